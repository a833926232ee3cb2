//! The compiler on a topology built through the topology service, as REST would build it.

use std::net::IpAddr;

use flowtable::topology::{Binding, DeviceSet, PortLink, RouteDecision};
use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::store::EmbeddedStore;

struct Lab {
    topo: Topology<EmbeddedStore>,
    _dir: TempDir,
    gateway: Uuid,
    compute: Uuid,
    edge: Uuid,
    uplink: Uuid,
    tenant: Uuid,
    bridge: Uuid,
    vm: Uuid,
    vm_key: u32,
    chain: Uuid,
}

fn from<R: serde::de::DeserializeOwned>(v: serde_json::Value) -> R {
    serde_json::from_value(v).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An edge router with an uplink bound to this gateway's `up0`, linked to a tenant router whose
/// port is linked to a bridge with a VM port bound on a compute host in a VXLAN zone; a default
/// route, a blackhole route, and a chain with a drop rule on the tenant router's inbound filter.
fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::new(EmbeddedStore::open(dir.path().join("db")).unwrap());
    let gateway = topo.create_host(from(json!({"name": "gw"}))).unwrap().id;
    let compute = topo.create_host(from(json!({"name": "compute1"}))).unwrap().id;
    let zone = topo.create_tunnel_zone(from(json!({"name": "tz", "type": "vxlan"}))).unwrap().id;
    for (h, a) in [(gateway, "192.168.100.1"), (compute, "192.168.100.11")] {
        topo.add_tunnel_zone_host(zone, from(json!({"hostId": h, "ipAddress": a}))).unwrap();
    }
    let chain = topo.create_chain(from(json!({"name": "tenant-in"}))).unwrap().id;
    let rule = json!({"type": "drop", "nwProto": 6, "tpDst": {"start": 23, "end": 23},
                      "nwDstAddress": "10.0.0.0", "nwDstLength": 24});
    topo.create_rule(chain, from(rule)).unwrap();
    let edge = topo.create_router(from(json!({"name": "edge"}))).unwrap().id;
    let tenant = topo.create_router(from(json!({"name": "tenant", "inboundFilterId": chain}))).unwrap().id;
    let rport = |router, addr: &str, net: &str, len: u32| -> Port {
        let body = json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": len});
        topo.create_port(router, from(body)).unwrap()
    };
    let uplink = rport(edge, "172.16.0.1", "172.16.0.0", 24).id;
    topo.bind_port(gateway, uplink, "up0").unwrap();
    let edge_in = rport(edge, "169.254.0.1", "169.254.0.0", 30).id;
    let tenant_out = rport(tenant, "169.254.0.2", "169.254.0.0", 30).id;
    topo.link_ports(edge_in, tenant_out).unwrap();
    let tenant_in = rport(tenant, "10.0.0.1", "10.0.0.0", 24).id;
    let bridge = topo.create_bridge(from(json!({"name": "net"}))).unwrap().id;
    let to_router = topo.create_port(bridge, from(json!({"type": "Bridge"}))).unwrap().id;
    topo.link_ports(tenant_in, to_router).unwrap();
    let vm_port = topo.create_port(bridge, from(json!({"type": "Bridge"}))).unwrap();
    topo.bind_port(compute, vm_port.id, "tap-vm1").unwrap();
    let route = |router, dst: &str, len: u32, port: Option<Uuid>, gw: Option<&str>, kind: &str| {
        let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": dst,
                          "dstNetworkLength": len, "nextHopPort": port, "nextHopGateway": gw, "type": kind,
                          "weight": 100});
        topo.create_route(router, from(body)).unwrap();
    };
    route(edge, "0.0.0.0", 0, Some(uplink), Some("172.16.0.254"), "Normal");
    route(edge, "10.0.0.0", 24, Some(edge_in), Some("169.254.0.2"), "Normal");
    route(edge, "203.0.113.0", 24, None, None, "BlackHole");
    route(tenant, "0.0.0.0", 0, Some(tenant_out), Some("169.254.0.1"), "Normal");
    Lab {
        topo,
        _dir: dir,
        gateway,
        compute,
        edge,
        uplink,
        tenant,
        bridge,
        vm: vm_port.id,
        vm_key: vm_port.tunnel_key.unwrap() as u32,
        chain,
    }
}

fn ctx(lab: &Lab, generation: u64) -> CompileContext {
    CompileContext {
        generation,
        local_host: Some(lab.gateway),
        interfaces: vec![("up0".into(), 3), ("tun0".into(), 4)],
        underlay: Some(Underlay::new(4, "192.168.100.1".parse().unwrap(), 24)),
    }
}

fn route(snap: &Snapshot, router: Uuid, dst: &str) -> RouteDecision {
    let Some(DeviceId::Router(r)) = snap.find(ft(router)) else { panic!("router {router} not compiled") };
    snap.router(r).route(ip("192.0.2.1"), ip(dst), 0, &mut DeviceSet::new())
}

fn port(snap: &Snapshot, id: Uuid) -> PortId {
    match snap.find(ft(id)) {
        Some(DeviceId::Port(p)) => p,
        other => panic!("port {id}: {other:?}"),
    }
}

#[test]
fn a_rest_built_topology_compiles_to_the_snapshot_the_cores_need() {
    let lab = lab();
    let compiled = compile(&lab.topo, &ctx(&lab, 7)).unwrap();
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    assert_eq!(compiled.store_version, lab.topo.store().version().unwrap());
    let snap = &compiled.snapshot;
    assert_eq!(snap.generation(), 7);
    assert_eq!((snap.routers().len(), snap.bridges().len(), snap.ports().len()), (2, 1, 6));

    // The uplink is bound to DPDK port 3, the VM port to the compute host by its tunnel key.
    let uplink = port(snap, lab.uplink);
    assert_eq!(snap.port_by_dpdk_port(3), Some(uplink));
    let vm = port(snap, lab.vm);
    assert_eq!(snap.port_by_tunnel_key(lab.vm_key), Some(vm));
    let PortLink::Exterior(Binding::Remote { host, tunnel_key }) = snap.port(vm).link else {
        panic!("{:?}", snap.port(vm).link)
    };
    assert_eq!(tunnel_key, lab.vm_key);
    assert_eq!(snap.host(host).tunnel_addr, ip("192.168.100.11"));
    assert_eq!(snap.host(host).uuid, ft(lab.compute));
    assert_eq!(snap.host(host).encap, Encap::Vxlan, "the zone's type");
    assert_eq!(snap.underlay().map(|u| u.dpdk_port), Some(4));

    // The gateway's own zone address should be its underlay address: said when it is not.
    let other =
        CompileContext { underlay: Some(Underlay::new(4, "192.168.100.9".parse().unwrap(), 24)), ..ctx(&lab, 8) };
    let compiled = compile(&lab.topo, &other).unwrap();
    assert!(
        compiled.warnings.iter().any(|w| w.contains("192.168.100.1") && w.contains("[underlay]")),
        "{:?}",
        compiled.warnings
    );

    // Routes: configured ones, and the port routes exactly once (from the port addresses).
    match route(snap, lab.edge, "8.8.8.8") {
        RouteDecision::Forward { port, next_hop, .. } => {
            assert_eq!((port, next_hop), (uplink, ip("172.16.0.254")));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(route(snap, lab.edge, "203.0.113.9"), RouteDecision::Blackhole { .. }));
    assert!(matches!(route(snap, lab.edge, "172.16.0.1"), RouteDecision::Local { .. }));
    match route(snap, lab.tenant, "10.0.0.5") {
        RouteDecision::Forward { next_hop, .. } => assert_eq!(next_hop, ip("10.0.0.5")),
        other => panic!("{other:?}"),
    }
    let Some(DeviceId::Router(edge)) = snap.find(ft(lab.edge)) else { unreachable!() };
    let connected = snap.router(edge).routes.iter().filter(|r| r.dst.to_string() == "172.16.0.0/24").count();
    assert_eq!(connected, 1, "the stored port route and the builder's automatic one are one route");

    // The tenant router's inbound filter is the chain, with the drop rule compiled.
    let Some(DeviceId::Router(tenant)) = snap.find(ft(lab.tenant)) else { unreachable!() };
    let Some(DeviceId::Chain(chain)) = snap.find(ft(lab.chain)) else { unreachable!() };
    assert_eq!(snap.router(tenant).infilter, Some(chain));
    let rules: Vec<_> = snap.chain(chain).rule_ids().map(|r| snap.rule(r)).collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].kind, RuleKind::Drop);
    assert_eq!(rules[0].condition.proto, Some(Field::is(6)));
    assert_eq!(rules[0].condition.dst_port, Some(Field::is(PortRange::single(23))));
    assert_eq!(rules[0].condition.dst.as_ref().map(|f| f.value.to_string()), Some("10.0.0.0/24".into()));
    assert_eq!(rules[0].fragment_policy, FtFragmentPolicy::Header, "L4 ports default to header fragments");

    // The bridge and its ports.
    let Some(DeviceId::Bridge(bridge)) = snap.find(ft(lab.bridge)) else { unreachable!() };
    assert_eq!(snap.bridge(bridge).ports.len(), 2);
}

#[test]
fn recompiling_after_a_change_names_only_what_changed() {
    let lab = lab();
    let first = compile(&lab.topo, &ctx(&lab, 1)).unwrap().snapshot;
    let again = compile(&lab.topo, &ctx(&lab, 2)).unwrap().snapshot;
    assert!(again.changed_tags(&first).is_empty(), "nothing changed in the store");

    let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "198.51.100.0",
                      "dstNetworkLength": 24, "type": "Reject", "weight": 100});
    lab.topo.create_route(lab.edge, from(body)).unwrap();
    let after_route = compile(&lab.topo, &ctx(&lab, 3)).unwrap().snapshot;
    assert_eq!(after_route.changed_tags(&again).tags, vec![ft(lab.edge).tag()]);
    assert!(matches!(route(&after_route, lab.edge, "198.51.100.7"), RouteDecision::Reject { .. }));

    let rule = json!({"type": "accept", "nwProto": 1});
    lab.topo.create_rule(lab.chain, from(rule)).unwrap();
    let after_rule = compile(&lab.topo, &ctx(&lab, 4)).unwrap().snapshot;
    assert_eq!(after_rule.changed_tags(&after_route).tags, vec![ft(lab.chain).tag()]);
}

#[test]
fn bindings_the_gateway_cannot_honour_are_warnings_not_errors() {
    let lab = lab();
    // This gateway has no `up0`: the uplink stays unplugged, everything else compiles.
    let ctx = CompileContext { interfaces: vec![("eth9".into(), 0)], ..self::ctx(&lab, 1) };
    let compiled = compile(&lab.topo, &ctx).unwrap();
    assert_eq!(compiled.warnings.len(), 1, "{:?}", compiled.warnings);
    assert!(compiled.warnings[0].contains("\"up0\""), "{}", compiled.warnings[0]);
    let uplink = port(&compiled.snapshot, lab.uplink);
    assert_eq!(compiled.snapshot.port(uplink).link, PortLink::Unplugged);

    // A VM port on a host in no tunnel zone is unreachable, and said so.
    let stranger = lab.topo.create_host(from(json!({"name": "stranger"}))).unwrap().id;
    let p = lab.topo.create_port(lab.bridge, from(json!({"type": "Bridge"}))).unwrap().id;
    lab.topo.bind_port(stranger, p, "tap0").unwrap();
    let compiled = compile(&lab.topo, &CompileContext { generation: 2, ..ctx.clone() }).unwrap();
    assert!(compiled.warnings.iter().any(|w| w.contains(&stranger.to_string()) && w.contains("tunnel zone")));
    // Without an underlay no remote port is reachable, and each is named.
    let compiled = compile(&lab.topo, &CompileContext { generation: 3, underlay: None, ..ctx }).unwrap();
    let vm = port(&compiled.snapshot, lab.vm);
    assert_eq!(compiled.snapshot.port(vm).link, PortLink::Unplugged);
    assert!(compiled.warnings.iter().any(|w| w.contains(&lab.vm.to_string()) && w.contains("[underlay]")));
}

#[test]
fn rules_the_data_path_cannot_represent_stop_the_compile() {
    let lab = lab();
    // The topology service refuses such a rule, so it is written to the store behind its back, as
    // an older version or another writer could have.
    let mut rule: Rule = lab.topo.create_rule(lab.chain, from(json!({"type": "accept", "nwProto": 17}))).unwrap();
    rule.condition.cond_invert = true;
    let data = serde_json::to_vec(&rule).unwrap();
    lab.topo.store().commit(None, &[Op::Update { kind: Kind::Rule, id: rule.id.to_string(), data }]).unwrap();
    let err = compile(&lab.topo, &ctx(&lab, 1)).unwrap_err();
    assert!(matches!(err, CompileError::Invalid { kind: "rule", .. }), "{err}");
    assert!(err.to_string().contains("condInvert"), "{err}");
}

#[test]
fn the_model_cache_follows_the_change_feed_to_the_same_snapshot_as_a_full_read() {
    let lab = lab();
    let mut cache = ModelCache::new();
    let mut generation = 1;
    let mut check = |cache: &mut ModelCache, what: &str| {
        generation += 1;
        let incremental = cache.compile(&lab.topo, &ctx(&lab, generation)).unwrap();
        let full = compile(&lab.topo, &ctx(&lab, generation)).unwrap();
        assert_eq!(incremental.store_version, full.store_version, "{what}");
        assert_eq!(incremental.snapshot, full.snapshot, "{what}: the cached model compiles like a full read");
        assert_eq!(incremental.warnings, full.warnings, "{what}");
    };
    check(&mut cache, "first read");
    let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "198.51.100.0",
                      "dstNetworkLength": 24, "type": "Reject", "weight": 100});
    let route = lab.topo.create_route(lab.edge, from(body)).unwrap().id;
    check(&mut cache, "a route added");
    let rule =
        lab.topo.create_rule(lab.chain, from(json!({"type": "accept", "nwProto": 1, "position": 1}))).unwrap().id;
    check(&mut cache, "a rule inserted first");
    lab.topo.delete_route(route).unwrap();
    lab.topo.delete_rule(rule).unwrap();
    check(&mut cache, "both deleted");
    // A cascade: deleting the bridge takes its ports (and the VM's binding) with it.
    lab.topo.delete_bridge(lab.bridge).unwrap();
    check(&mut cache, "a bridge deleted with its ports");
    let stranger = lab.topo.create_host(from(json!({"name": "other"}))).unwrap().id;
    let zone = lab.topo.create_tunnel_zone(from(json!({"name": "gre", "type": "gre"}))).unwrap().id;
    lab.topo.add_tunnel_zone_host(zone, from(json!({"hostId": stranger, "ipAddress": "192.168.100.50"}))).unwrap();
    check(&mut cache, "a zone and a member");
    // A route to a network the uplink does not have is compiled; once the port has that network
    // too, it is the port's connected route (the builder's own): the cached port must follow.
    let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": "172.18.0.0",
                      "dstNetworkLength": 24, "nextHopPort": lab.uplink, "type": "Normal", "weight": 100});
    let connected = lab.topo.create_route(lab.edge, from(body)).unwrap().id;
    check(&mut cache, "a route without gateway");
    let compiled = cache.compile(&lab.topo, &ctx(&lab, 100)).unwrap().snapshot;
    let edge = route_ids(&compiled, lab.edge);
    assert!(edge.contains(&ft(connected)), "not a connected route yet: compiled as stored");
    let mut uplink: Port = lab.topo.get(&lab.uplink.to_string()).unwrap();
    uplink.port_subnet = Some(vec!["172.16.0.1/24".into(), "172.18.0.1/24".into()]);
    let data = serde_json::to_vec(&uplink).unwrap();
    lab.topo.store().commit(None, &[Op::Update { kind: Kind::Port, id: lab.uplink.to_string(), data }]).unwrap();
    check(&mut cache, "the port's addresses rewritten in the store");
    let compiled = cache.compile(&lab.topo, &ctx(&lab, 101)).unwrap().snapshot;
    assert!(!route_ids(&compiled, lab.edge).contains(&ft(connected)), "now the builder's connected route");
    check(&mut cache, "nothing changed");
}

/// The route UUIDs of a router in a snapshot.
fn route_ids(snap: &Snapshot, router: Uuid) -> Vec<FtUuid> {
    let Some(DeviceId::Router(r)) = snap.find(ft(router)) else { panic!("router {router} not compiled") };
    snap.router(r).routes.iter().map(|r| r.uuid).collect()
}

/// Routes written to the store behind the topology service's back (an older version, another
/// writer): judged by the compile in its order, the same through the model cache (which reads a
/// route once, when it changes) as through a full read.
#[test]
fn stored_routes_are_refused_or_skipped_in_the_order_the_compile_judges_them() {
    let lab = lab();
    // A router port without a usable MAC: left out of the snapshot.
    let mut hidden = lab
        .topo
        .create_port(
            lab.edge,
            from(json!({"type": "Router", "portAddress": "192.0.2.1",
        "networkAddress": "192.0.2.0", "networkLength": 24})),
        )
        .unwrap();
    hidden.port_mac = Some("not-a-mac".into());
    let data = serde_json::to_vec(&hidden).unwrap();
    lab.topo.store().commit(None, &[Op::Update { kind: Kind::Port, id: hidden.id.to_string(), data }]).unwrap();
    let nowhere = Uuid::new_v4();
    let normal = |router: Uuid, dst: &str, port: Option<Uuid>, gateway: &str| {
        json!({"id": Uuid::new_v4(), "routerId": router, "srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0,
               "dstNetworkAddr": dst, "dstNetworkLength": 24, "nextHopPort": port, "nextHopGateway": gateway,
               "type": "Normal", "weight": 100})
    };
    let mut with_type = normal(lab.edge, "300.0.0.0", None, "");
    with_type["type"] = json!("Local");
    let mut fip64 = normal(lab.edge, "198.51.100.0", None, "");
    fip64["type"] = json!("Fip64");
    // (route, what the compile says: Ok(a warning naming it) or Err(the refusal's problem)).
    let cases: Vec<(serde_json::Value, Result<&str, String>)> = vec![
        // Out of a port left out: skipped before its gateway is looked at.
        (normal(lab.edge, "198.51.100.0", Some(hidden.id), "not-an-ip"), Ok("goes out of a port that is left out")),
        (normal(lab.edge, "198.51.100.0", Some(lab.uplink), "not-an-ip"), Err(r#"nextHopGateway "not-an-ip""#.into())),
        (
            normal(lab.edge, "300.0.0.0", Some(lab.uplink), ""),
            Err(r#"dstNetworkAddr/Length Some("300.0.0.0")/Some(24)"#.into()),
        ),
        // A local route's networks are judged before it is left to the builder.
        (with_type, Err(r#"dstNetworkAddr/Length Some("300.0.0.0")/Some(24)"#.into())),
        (normal(lab.edge, "198.51.100.0", None, ""), Err("a normal route needs nextHopPort".into())),
        (fip64, Err("FIP64 routes are not supported by the data path".into())),
        // A route of a router that is not there is left out, whatever it says.
        (normal(nowhere, "300.0.0.0", Some(lab.uplink), "not-an-ip"), Ok("")),
    ];
    let mut cache = ModelCache::new();
    for (generation, (body, expected)) in (1..).zip(cases) {
        let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
        let put = |op: Op| lab.topo.store().commit(None, &[op]).unwrap();
        put(Op::Create { kind: Kind::Route, id: id.to_string(), data: serde_json::to_vec(&body).unwrap() });
        let ctx = ctx(&lab, generation);
        for (how, result) in [("full read", compile(&lab.topo, &ctx)), ("model cache", cache.compile(&lab.topo, &ctx))]
        {
            match (&expected, result) {
                (Ok(warning), Ok(compiled)) => {
                    let named: Vec<_> = compiled.warnings.iter().filter(|w| w.contains(&id.to_string())).collect();
                    match *warning {
                        "" => assert!(named.is_empty(), "{body} ({how}): {named:?}"),
                        w => assert!(named.len() == 1 && named[0].contains(w), "{body} ({how}): {named:?}"),
                    }
                    assert!(!route_ids(&compiled.snapshot, lab.edge).contains(&ft(id)), "{body} ({how})");
                }
                (Err(problem), Err(CompileError::Invalid { kind: "route", id: refused, problem: said })) => {
                    assert_eq!((refused, &said), (id, problem), "{body} ({how})");
                }
                (expected, got) => panic!("{body} ({how}): expected {expected:?}, got {got:?}"),
            }
        }
        put(Op::Delete { kind: Kind::Route, id: id.to_string() });
    }
}

#[test]
fn id_maps_find_every_id_in_any_insertion_order() {
    let ids: Vec<Uuid> = (0..64).map(|_| Uuid::new_v4()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    for order in [sorted.clone(), sorted.iter().rev().copied().collect(), ids.clone()] {
        let mut map = IdMap::default();
        for (i, id) in order.iter().enumerate() {
            map.insert(*id, i);
        }
        for (i, id) in order.iter().enumerate() {
            assert_eq!(map.get(id), Some(&i));
            assert_eq!(map[id], i);
        }
        assert_eq!(map.get(&Uuid::new_v4()), None);
        // Inserting an id again replaces what it maps to, as a hash map's insert does.
        map.insert(order[10], 1000);
        assert_eq!(map.get(&order[10]), Some(&1000));
        assert_eq!(map.entries.len(), order.len());
    }
}
