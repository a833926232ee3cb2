//! Bulk-built topologies for the control-plane benchmarks.
//!
//! `Topology`'s writes are one object per transaction and each port create lists every port (for
//! tunnel-key and MAC uniqueness), so 10,000 routers through it would be quadratic. Instead router 0
//! is created through [`Topology`] (validated, with its port, the port's automatic routes and its
//! static routes), and the other routers are copies of those exact documents with fresh ids, MACs,
//! tunnel keys and route destinations, written with `Op::Create` in batches of [`BATCH`] ops, one
//! store transaction each. The snapshot compiler then checks the whole result.

use std::net::Ipv4Addr;

use ::control::{Chain, Kind, Op, Port, PortType, Resource, Route, Router, Rule, Store, Topology};
use uuid::Uuid;

use super::ControlError;

/// Ops per store transaction while bulk-loading.
pub const BATCH: usize = 5000;

/// What was built.
#[derive(Debug, Clone)]
pub struct Built {
    /// Router ids, in creation order.
    pub routers: Vec<Uuid>,
    /// The port of each router (same order): the next hop of its routes.
    pub ports: Vec<Uuid>,
    /// Static routes written (not counting the ports' automatic routes).
    pub routes: usize,
    /// Documents written in all.
    pub documents: usize,
}

/// The port subnet every generated router uses (routers are separate address spaces).
const PORT_ADDRESS: &str = "10.0.0.1";
/// The next-hop gateway of the generated static routes, inside the port's subnet.
const GATEWAY: &str = "10.0.0.254";

/// The destination of static route `k` (all distinct /24s from 20.0.0.0 upwards).
pub fn route_destination(k: u32) -> Ipv4Addr {
    Ipv4Addr::from((20u32 << 24).wrapping_add(k << 8))
}

fn doc<T: Resource>(value: &T) -> Result<Op, ControlError> {
    let data = serde_json::to_vec(value).map_err(|e| ControlError::Setup(format!("encoding {}: {e}", T::KIND)))?;
    Ok(Op::Create { kind: T::KIND, id: value.key(), data })
}

fn mac(i: u32) -> String {
    let b = i.to_be_bytes();
    // 02:ff:... cannot collide with the random `02:` MACs Topology picks unless it draws these.
    format!("02:ff:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

fn route_body(router: Uuid, port: Uuid, dst: Ipv4Addr) -> Route {
    Route {
        id: Uuid::nil(),
        router_id: Some(router),
        next_hop_port: Some(port),
        attributes: None,
        dst_network_addr: Some(dst.to_string()),
        dst_network_length: Some(24),
        src_network_addr: Some("0.0.0.0".into()),
        src_network_length: Some(0),
        next_hop_gateway: Some(GATEWAY.into()),
        weight: 100,
        route_type: Default::default(),
        learned: false,
    }
}

/// A route of `router` through `port` to destination `k`, as a client POSTs it.
pub fn route_json(port: Uuid, k: u32) -> serde_json::Value {
    serde_json::json!({
        "type": "Normal",
        "nextHopPort": port,
        "dstNetworkAddr": route_destination(k).to_string(),
        "dstNetworkLength": 24,
        "srcNetworkAddr": "0.0.0.0",
        "srcNetworkLength": 0,
        "nextHopGateway": GATEWAY,
        "weight": 100,
    })
}

/// Adds `routers` routers, each with one router port and `routes_per_router` static routes, to
/// an empty part of `topology`'s store.
pub fn populate<S: Store>(topology: &Topology<S>, routers: u32, routes_per_router: u32) -> Result<Built, ControlError> {
    let mut built = Built { routers: Vec::new(), ports: Vec::new(), routes: 0, documents: 0 };
    if routers == 0 {
        return Ok(built);
    }
    let setup = |what: &str, e: &dyn std::fmt::Display| ControlError::Setup(format!("{what}: {e}"));
    // Router 0 through the validating service: the template every copy follows.
    let router: Router =
        serde_json::from_value(serde_json::json!({"name": "bench-0"})).map_err(|e| setup("router", &e))?;
    let router = topology.create_router(router).map_err(|e| setup("creating router 0", &e))?;
    let port: Port = serde_json::from_value(serde_json::json!({
        "type": "Router", "portAddress": PORT_ADDRESS, "networkAddress": "10.0.0.0", "networkLength": 24
    }))
    .map_err(|e| setup("port", &e))?;
    let port = topology.create_port(router.id, port).map_err(|e| setup("creating router 0's port", &e))?;
    for j in 0..routes_per_router {
        topology
            .create_route(router.id, route_body(router.id, port.id, route_destination(j)))
            .map_err(|e| setup("creating router 0's routes", &e))?;
    }
    let port_routes: Vec<Route> = topology
        .router_routes(router.id)
        .map_err(|e| setup("reading router 0's routes", &e))?
        .into_iter()
        .filter(|r| r.next_hop_gateway.is_none())
        .collect();
    let static_routes: Vec<Route> = topology
        .router_routes(router.id)
        .map_err(|e| setup("reading router 0's routes", &e))?
        .into_iter()
        .filter(|r| r.next_hop_gateway.is_some())
        .collect();
    if static_routes.len() != routes_per_router as usize || port.port_type != PortType::Router {
        return Err(ControlError::Setup(format!(
            "router 0 has {} static routes, expected {routes_per_router}",
            static_routes.len()
        )));
    }
    let max_key = topology
        .list::<Port>()
        .map_err(|e| setup("listing ports", &e))?
        .iter()
        .filter_map(|p| p.tunnel_key)
        .max()
        .unwrap_or(0);
    built.routers.push(router.id);
    built.ports.push(port.id);
    built.routes += static_routes.len();
    built.documents += 2 + port_routes.len() + static_routes.len();

    let mut ops = Vec::with_capacity(BATCH + 16);
    for i in 1..routers {
        let mut r = router.clone();
        r.id = Uuid::new_v4();
        r.name = Some(format!("bench-{i}"));
        let mut p = port.clone();
        p.id = Uuid::new_v4();
        p.device_id = Some(r.id);
        p.tunnel_key = Some(max_key + u64::from(i));
        p.port_mac = Some(mac(i));
        ops.push(doc(&r)?);
        ops.push(doc(&p)?);
        for template in &port_routes {
            let mut route = template.clone();
            route.id = Uuid::new_v4();
            route.router_id = Some(r.id);
            route.next_hop_port = Some(p.id);
            ops.push(doc(&route)?);
        }
        for (j, template) in static_routes.iter().enumerate() {
            let mut route = template.clone();
            route.id = Uuid::new_v4();
            route.router_id = Some(r.id);
            route.next_hop_port = Some(p.id);
            route.dst_network_addr = Some(route_destination(i * routes_per_router + j as u32).to_string());
            ops.push(doc(&route)?);
        }
        built.routers.push(r.id);
        built.ports.push(p.id);
        built.routes += static_routes.len();
        if ops.len() >= BATCH {
            built.documents += ops.len();
            topology.store().commit(None, &ops).map_err(|e| setup("bulk commit", &e))?;
            ops.clear();
        }
    }
    if !ops.is_empty() {
        built.documents += ops.len();
        topology.store().commit(None, &ops).map_err(|e| setup("bulk commit", &e))?;
    }
    Ok(built)
}

/// Gives `router` an inbound filter chain of `rules` rules (each drops UDP to one destination
/// port, 1 to `rules`, none matching what the benchmarks send): the first rule and the chain
/// through [`Topology`] (validated), the rest copies of that rule with fresh ids, bulk-written like
/// [`populate`]'s routers, and the chain's rule list in the same last transaction. Returns the
/// chain's id.
pub fn populate_rules<S: Store>(topology: &Topology<S>, router: Uuid, rules: u32) -> Result<Uuid, ControlError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| ControlError::Setup(format!("{what}: {e}"));
    let chain: Chain =
        serde_json::from_value(serde_json::json!({"name": "bench-rules"})).map_err(|e| setup("chain", &e))?;
    let chain = topology.create_chain(chain).map_err(|e| setup("creating the chain", &e))?;
    if rules == 0 {
        return Ok(chain.id);
    }
    let rule: Rule = serde_json::from_value(serde_json::json!({
        "type": "drop", "nwProto": 17, "tpDst": {"start": 1, "end": 1}
    }))
    .map_err(|e| setup("rule", &e))?;
    let template = topology.create_rule(chain.id, rule).map_err(|e| setup("creating rule 1", &e))?;
    let mut chain: Chain = topology.get(&chain.id.to_string()).map_err(|e| setup("reading the chain", &e))?;
    let mut ops = Vec::with_capacity(BATCH + 1);
    for k in 2..=rules {
        let mut r = template.clone();
        r.id = Uuid::new_v4();
        r.position = Some(k);
        r.condition.tp_dst = Some(::control::Range { start: k % 65536, end: k % 65536 });
        chain.rule_ids.push(r.id);
        ops.push(doc(&r)?);
        if ops.len() >= BATCH {
            topology.store().commit(None, &ops).map_err(|e| setup("bulk commit", &e))?;
            ops.clear();
        }
    }
    let data = serde_json::to_vec(&chain).map_err(|e| setup("encoding the chain", &e))?;
    ops.push(Op::Update { kind: Chain::KIND, id: chain.key(), data });
    topology.store().commit(None, &ops).map_err(|e| setup("bulk commit", &e))?;
    let mut r: Router = topology.get(&router.to_string()).map_err(|e| setup("reading the router", &e))?;
    r.inbound_filter_id = Some(chain.id);
    topology.update_router(r).map_err(|e| setup("attaching the chain", &e))?;
    Ok(chain.id)
}

/// How many documents of `kind` the store holds.
pub fn count<S: Store>(store: &S, kind: Kind) -> Result<usize, ControlError> {
    Ok(store.list(kind).map_err(|e| ControlError::Setup(format!("listing {kind}: {e}")))?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::control::compile::{compile, CompileContext};
    use ::control::EmbeddedStore;

    #[test]
    fn copies_are_what_topology_would_have_written() {
        let dir = std::env::temp_dir().join(format!("perf-populate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let topology = Topology::new(EmbeddedStore::open(dir.join("s.redb")).unwrap());
        let built = populate(&topology, 12, 3).unwrap();
        assert_eq!(built.routers.len(), 12);
        assert_eq!(built.routes, 36);
        assert_eq!(count(topology.store(), Kind::Router).unwrap(), 12);
        assert_eq!(count(topology.store(), Kind::Port).unwrap(), 12);
        // 3 static + the port's local and connected routes, per router.
        assert_eq!(count(topology.store(), Kind::Route).unwrap(), 12 * 5);
        assert_eq!(built.documents, 12 * 7);
        // Unique tunnel keys and MACs, every copy readable through the service.
        let ports: Vec<Port> = topology.list().unwrap();
        let mut keys: Vec<u64> = ports.iter().map(|p| p.tunnel_key.unwrap()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 12);
        let mut macs: Vec<String> = ports.iter().map(|p| p.port_mac.clone().unwrap()).collect();
        macs.sort();
        macs.dedup();
        assert_eq!(macs.len(), 12);
        assert_eq!(topology.router_routes(built.routers[7]).unwrap().len(), 5);
        // The compiler accepts it: 12 routers, 12 ports, 36 static routes.
        let compiled = compile(&topology, &CompileContext { generation: 1, ..Default::default() }).unwrap();
        assert_eq!(compiled.snapshot.routers().len(), 12);
        assert_eq!(compiled.snapshot.ports().len(), 12);
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
        // A client-style route on a copy is accepted by the service.
        let route: Route = serde_json::from_value(route_json(built.ports[5], 999)).unwrap();
        topology.create_route(built.routers[5], route).unwrap();
        drop(topology);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The bulk-written rules are what the service would have written: the chain lists them in
    /// order, the service appends after them, and the compiler puts all of them in the router's
    /// inbound filter.
    #[test]
    fn bulk_rules_make_one_chain_the_compiler_takes() {
        let dir = std::env::temp_dir().join(format!("perf-populate-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let topology = Topology::new(EmbeddedStore::open(dir.join("s.redb")).unwrap());
        let built = populate(&topology, 2, 1).unwrap();
        let chain = populate_rules(&topology, built.routers[0], 7).unwrap();
        let rules = topology.chain_rules(chain).unwrap();
        let ports: Vec<u32> = rules.iter().map(|r| r.condition.tp_dst.as_ref().unwrap().start).collect();
        assert_eq!(ports, [1, 2, 3, 4, 5, 6, 7]);
        let rule: Rule = serde_json::from_value(serde_json::json!({"type": "drop", "position": 8})).unwrap();
        topology.create_rule(chain, rule).unwrap();
        let compiled = compile(&topology, &CompileContext { generation: 1, ..Default::default() }).unwrap();
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
        assert_eq!(compiled.snapshot.routers().iter().filter(|r| r.infilter.is_some()).count(), 1, "router 0's filter");
        assert_eq!(compiled.snapshot.rules().len(), 8, "every rule compiled");
        drop(topology);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn destinations_are_distinct_slash_24s() {
        assert_eq!(route_destination(0), Ipv4Addr::new(20, 0, 0, 0));
        assert_eq!(route_destination(1), Ipv4Addr::new(20, 0, 1, 0));
        assert_eq!(route_destination(99_999), Ipv4Addr::from((20u32 << 24) + 99_999 * 256));
    }
}
