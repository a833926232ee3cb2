//! `midogw topology import`: the gateway example file written into an embedded store by the
//! binary, read back with `control` after the process exits, compiled with `control::compile` and
//! compared with the snapshot `midogw topology check` builds from the file itself; a second import
//! refused, `--replace`, a bad file, and a failure midway rolled back.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::appliance::{TempDir, MIDOGW};
use common::zookeeper::ZkServer;
use control::compile::{compile, CompileContext};
use control::store::{ZookeeperConfig, ZookeeperStore};
use control::{
    Bridge, Chain, EmbeddedStore, Host, Port, PortType, Range, Route, Router, Rule, RuleType, Topology, TunnelZone,
    TunnelZoneType,
};
use midogw::flowtable::topology::{
    Binding, DeviceSet, PortId, PortKind, PortLink, RouteDecision, RouteOrigin, RouteType, Snapshot, Underlay,
};
use uuid::Uuid;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/appliance/topology.gateway.example.toml");
const GATEWAY: &str = "7d0c3c7e-1111-4222-8333-444455556666";

/// The DPDK ports of the test config, in order (the example binds to the first two).
const PORTS: [&str; 3] = ["uplink0", "underlay0", "vm0"];

/// A config with [`PORTS`], an embedded store and a fixed host id.
fn config(dir: &TempDir) -> PathBuf {
    config_with_store(dir, "[store]\npath = \"db/store.redb\"\n")
}

fn config_with_store(dir: &TempDir, store: &str) -> PathBuf {
    let ports: String = PORTS
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[[port]]\nname = \"{p}\"\ndevargs = \"net_ring{i}\"\n\n"))
        .collect();
    dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n{ports}[workers]\ncores = [1]\n\n[topology]\n\
             source = \"store\"\n\n[rest]\nlisten = \"127.0.0.1:0\"\n\n{store}\n\
             [host]\nid = \"{GATEWAY}\"\nname = \"gw-test\"\n"
        ),
    )
}

fn store_path(dir: &TempDir) -> PathBuf {
    dir.0.join("db/store.redb")
}

fn midogw(args: &[&str]) -> Output {
    Command::new(MIDOGW).args(args).env("MIDOGW_LOG", "warn").output().expect("run midogw")
}

fn import(file: &str, config: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["topology", "import", file, "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = midogw(&args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The `KIND NAME UUID` lines of an import's summary: name -> id per kind.
fn created(summary: &str) -> BTreeMap<String, Uuid> {
    let mut ids = BTreeMap::new();
    for line in summary.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kind, name, id) = match words.as_slice() {
            ["router" | "bridge" | "chain" | "host" | "port", name, id, ..] => (words[0], *name, *id),
            ["tunnel", "zone", name, id, ..] => ("zone", *name, *id),
            _ => continue,
        };
        if let Ok(id) = id.parse() {
            ids.insert(format!("{kind} {name}"), id);
        }
    }
    ids
}

fn open(dir: &TempDir) -> Topology<EmbeddedStore> {
    std::fs::create_dir_all(store_path(dir).parent().unwrap()).unwrap();
    Topology::new(EmbeddedStore::open(store_path(dir)).expect("open the store"))
}

fn get<T: control::Resource>(t: &Topology<EmbeddedStore>, id: Uuid) -> T {
    t.get(&id.to_string()).unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// Id- and order-independent facts about a snapshot (the same form `topology check --dump` prints):
/// router ports by MAC, routers by their ports, bridge ports by what they are plugged into.
fn describe(snap: &Snapshot) -> BTreeSet<String> {
    let key = |id: PortId| -> String {
        let p = snap.port(id);
        if let Some(rp) = p.as_router_port() {
            return rp.mac.to_string();
        }
        match p.link {
            PortLink::Exterior(Binding::Remote { tunnel_key, .. }) => format!("tunnel:{tunnel_key:#x}"),
            PortLink::Exterior(Binding::Local { dpdk_port }) => format!("dpdk:{dpdk_port}"),
            PortLink::Peer(peer) => {
                format!("peer:{}", snap.port(peer).as_router_port().map_or("?".into(), |r| r.mac.to_string()))
            }
            PortLink::Unplugged => "unplugged".into(),
        }
    };
    let link = |l: PortLink| match l {
        PortLink::Unplugged => "unplugged".to_string(),
        PortLink::Peer(p) => format!("linked to {}", key(p)),
        PortLink::Exterior(Binding::Local { dpdk_port }) => format!("bound to dpdk port {dpdk_port}"),
        PortLink::Exterior(Binding::Remote { host, tunnel_key }) => {
            format!("bound on {} key {tunnel_key:#x}", snap.host(host).tunnel_addr)
        }
    };
    let group = |ports: &[PortId], what: &str| {
        let mut keys: Vec<String> = ports.iter().map(|&p| key(p)).collect();
        keys.sort();
        format!("{what}[{}]", keys.join(" "))
    };
    let mut facts = BTreeSet::new();
    for h in snap.hosts() {
        facts.insert(format!("host {} {:?}", h.tunnel_addr, h.encap));
    }
    for r in snap.routers() {
        let rk = group(&r.ports, "router");
        for &p in r.ports.iter() {
            let mut addrs: Vec<String> =
                snap.port(p).as_router_port().unwrap().addresses.iter().map(|a| a.to_string()).collect();
            addrs.sort();
            facts.insert(format!("{rk} port {} addresses {} {}", key(p), addrs.join(","), link(snap.port(p).link)));
        }
        for route in r.routes.iter() {
            let kind = match route.kind {
                RouteType::Normal => "normal",
                RouteType::Blackhole => "blackhole",
                RouteType::Reject => "reject",
                RouteType::Local => "local",
            };
            let origin = if route.origin == RouteOrigin::Configured { "configured" } else { "port" };
            facts.insert(format!(
                "{rk} route {} from {} {kind} via {} gateway {} weight {} {origin}",
                route.dst,
                route.src,
                route.port.map_or("-".into(), key),
                route.gateway.map_or("-".into(), |g| g.to_string()),
                route.weight
            ));
        }
        let chain = |c: Option<_>| c.map_or("-".to_string(), |c| snap.chain(c).name.to_string());
        facts.insert(format!("{rk} infilter {} outfilter {}", chain(r.infilter), chain(r.outfilter)));
    }
    for b in snap.bridges() {
        let bk = group(&b.ports, "bridge");
        for &p in b.ports.iter() {
            assert!(matches!(snap.port(p).kind, PortKind::Bridge(_)));
            facts.insert(format!("{bk} port {} {}", key(p), link(snap.port(p).link)));
        }
    }
    facts.insert(format!("rules {}", snap.rules().len()));
    facts
}

fn compile_store<S: control::Store>(t: &Topology<S>) -> Snapshot {
    let ctx = CompileContext {
        generation: 1,
        local_host: Some(GATEWAY.parse().unwrap()),
        interfaces: PORTS.iter().enumerate().map(|(i, p)| (p.to_string(), i as u16)).collect(),
        underlay: Some(Underlay::new(1, "192.168.7.1".parse().unwrap(), 24)),
    };
    let compiled = compile(t, &ctx).unwrap_or_else(|e| panic!("compile the imported store: {e}"));
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    compiled.snapshot
}

/// Where `router` (found by one of its port MACs) sends `dst`: the egress port's MAC and next hop.
fn lookup(snap: &Snapshot, router_mac: &str, dst: &str) -> Option<(String, IpAddr)> {
    let router = snap
        .routers()
        .iter()
        .find(|r| r.ports.iter().any(|&p| snap.port(p).as_router_port().unwrap().mac.to_string() == router_mac))
        .expect("router");
    let dst: IpAddr = dst.parse().unwrap();
    let src: IpAddr = if dst.is_ipv4() { "198.51.100.7".parse().unwrap() } else { "2001:db8:99::7".parse().unwrap() };
    match router.route(src, dst, 0, &mut DeviceSet::default()) {
        RouteDecision::Forward { port, next_hop, .. } => {
            Some((snap.port(port).as_router_port().unwrap().mac.to_string(), next_hop))
        }
        RouteDecision::NoRoute => None,
        other => panic!("{dst}: unexpected {other:?}"),
    }
}

#[test]
fn the_gateway_example_imports_and_compiles_to_the_files_routes() {
    let dir = TempDir::new("import-example");
    let cfg = config(&dir);

    // The store cannot hold the example's two IPv6 routes: refused with their locations.
    let (ok, out) = import(EXAMPLE, &cfg, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("{EXAMPLE}:53:7: route 2001:db8:10::/64 of router \"edge\"")), "{out}");
    assert!(out.contains(&format!("{EXAMPLE}:76:7: route ::/0 of router \"tenant\"")), "{out}");
    assert!(out.contains("--skip-unsupported") && out.contains("nothing was written"), "{out}");
    assert!(!store_path(&dir).exists(), "a refused import must not even create the store");

    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("skipped {EXAMPLE}:53:7")) && out.contains(&format!("skipped {EXAMPLE}:76:7")),
        "{out}"
    );
    assert!(out.contains("[underlay]\n  port = \"underlay0\"\n  address = \"192.168.7.1/24\"\n"), "{out}");
    let ids = created(&out);
    let id = |k: &str| *ids.get(k).unwrap_or_else(|| panic!("{k} not in the summary:\n{out}"));
    let gateway: Uuid = GATEWAY.parse().unwrap();

    // Read back what the process wrote.
    let t = open(&dir);
    let edge: Router = get(&t, id("router edge"));
    let tenant: Router = get(&t, id("router tenant"));
    assert_eq!((edge.name.as_deref(), edge.tenant_id.as_deref()), (Some("edge"), Some("midogw-import")));
    assert_eq!(tenant.inbound_filter_id, Some(id("chain tenant-in")));
    assert_eq!(t.list::<Router>().unwrap().len(), 2);
    let net: Bridge = get(&t, id("bridge net"));
    assert_eq!(net.name.as_deref(), Some("net"));

    let uplink: Port = get(&t, id("port edge/uplink"));
    assert_eq!(uplink.port_type, PortType::Router);
    assert_eq!(uplink.device_id, Some(edge.id));
    assert_eq!(uplink.port_subnet.as_deref(), Some(&["203.0.113.1/24".to_string(), "2001:db8:ff::1/64".into()][..]));
    assert_eq!(uplink.port_mac.as_deref(), Some("02:00:00:00:01:01"));
    assert_eq!((uplink.host_id, uplink.interface_name.as_deref()), (Some(gateway), Some("uplink0")));
    let to_tenant: Port = get(&t, id("port edge/to-tenant"));
    assert_eq!(to_tenant.port_mac.as_deref(), Some("02:6d:67:00:01:01"), "the file's default MAC is kept");
    assert_eq!(to_tenant.peer_id, Some(id("port tenant/up")));
    let tenant_net: Port = get(&t, id("port tenant/net"));
    assert_eq!(tenant_net.peer_id, Some(id("port net/router")));
    let vm1: Port = get(&t, id("port net/vm1"));
    assert_eq!(vm1.port_type, PortType::Bridge);
    assert_eq!((vm1.host_id, vm1.tunnel_key), (Some(id("host compute1")), Some(0x101)));
    assert_eq!(vm1.interface_name.as_deref(), Some("net/vm1"));
    let vm2: Port = get(&t, id("port net/vm2"));
    assert_eq!((vm2.host_id, vm2.tunnel_key), (Some(id("host compute2")), Some(0x102)));

    let routes: Vec<Route> =
        t.router_routes(edge.id).unwrap().into_iter().filter(|r| r.next_hop_gateway.is_some()).collect();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].dst_network_addr.as_deref(), Some("10.0.0.0"));
    assert_eq!(routes[0].dst_network_length, Some(24));
    assert_eq!(routes[0].next_hop_port, Some(to_tenant.id));
    assert_eq!(routes[0].next_hop_gateway.as_deref(), Some("169.254.0.2"));
    let tenant_default: Vec<Route> =
        t.router_routes(tenant.id).unwrap().into_iter().filter(|r| r.dst_network_length == Some(0)).collect();
    assert_eq!(tenant_default.len(), 1);
    assert_eq!(tenant_default[0].next_hop_gateway.as_deref(), Some("169.254.0.1"));
    assert_eq!(tenant_default[0].next_hop_port, Some(id("port tenant/up")));

    let chain: Chain = get(&t, id("chain tenant-in"));
    let rules: Vec<Rule> = chain.rule_ids.iter().map(|r| get(&t, *r)).collect();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].rule_type, RuleType::Drop);
    assert_eq!(rules[0].condition.nw_proto, Some(6));
    assert_eq!(rules[0].condition.tp_dst, Some(Range { start: 22, end: 22 }));
    assert_eq!(rules[0].condition.in_ports, vec![id("port tenant/up")]);
    assert_eq!(rules[1].rule_type, RuleType::Accept);
    assert_eq!(rules[1].condition, control::Condition::default());

    let zone: TunnelZone = get(&t, id("zone midogw-vxlan"));
    assert_eq!(zone.zone_type, TunnelZoneType::Vxlan);
    let members: BTreeSet<(Uuid, &str)> = zone.members.iter().map(|m| (m.host_id, m.ip_address.as_str())).collect();
    assert_eq!(members, BTreeSet::from([(id("host compute1"), "192.168.7.11"), (id("host compute2"), "192.168.7.12")]));
    let host: Host = get(&t, gateway);
    assert_eq!(host.name.as_deref(), Some("gw-test"));

    // The compiled store against the file's own snapshot: the same routers, ports, links, bindings,
    // hosts and routes, except exactly the two IPv6 routes the import skipped.
    let store_snap = compile_store(&t);
    drop(t);
    let dump = midogw(&["topology", "check", EXAMPLE, "--config", cfg.to_str().unwrap(), "--dump"]);
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let from_file: BTreeSet<String> = String::from_utf8(dump.stdout).unwrap().lines().map(String::from).collect();
    let from_store = describe(&store_snap);
    let missing: Vec<&String> = from_file.difference(&from_store).collect();
    let extra: Vec<&String> = from_store.difference(&from_file).collect();
    assert!(extra.is_empty(), "the store has what the file does not: {extra:#?}");
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(missing[0].contains("route 2001:db8:10::/64 from ::/0 normal via 02:6d:67:00:01:01 gateway fd00::2"));
    assert!(missing[1].contains("route ::/0 from ::/0 normal via 02:6d:67:01:00:01 gateway fd00::1"));
    assert!(from_file.len() > 30, "the dump describes the whole topology: {from_file:#?}");

    // And the compiled store routes as the file says.
    let via_tenant = Some(("02:6d:67:00:01:01".to_string(), "169.254.0.2".parse().unwrap()));
    assert_eq!(lookup(&store_snap, "02:00:00:00:01:01", "10.0.0.5"), via_tenant);
    let via_edge = Some(("02:6d:67:01:00:01".to_string(), "169.254.0.1".parse().unwrap()));
    assert_eq!(lookup(&store_snap, "02:6d:67:01:01:01", "8.8.8.8"), via_edge);
    let on_net = Some(("02:6d:67:01:01:01".to_string(), "10.0.0.7".parse().unwrap()));
    assert_eq!(lookup(&store_snap, "02:6d:67:01:01:01", "10.0.0.7"), on_net);
    let on_uplink = Some(("02:00:00:00:01:01".to_string(), "2001:db8:ff::9".parse().unwrap()));
    assert_eq!(lookup(&store_snap, "02:00:00:00:01:01", "2001:db8:ff::9"), on_uplink);
    assert_eq!(lookup(&store_snap, "02:00:00:00:01:01", "2001:db8:10::5"), None, "the skipped IPv6 route");
    assert!(store_snap.port_by_dpdk_port(0).is_some(), "edge/uplink is bound to uplink0");
}

#[test]
fn a_second_import_is_refused_and_replace_redoes_it() {
    let dir = TempDir::new("import-twice");
    let cfg = config(&dir);
    let (ok, first) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(ok, "{first}");
    let first = created(&first);

    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(!ok, "{out}");
    assert!(out.contains("already has objects with the file's names; nothing was written"), "{out}");
    assert!(
        out.contains(&format!(
            "router \"edge\" already exists as {} (imported earlier: use --replace)",
            first["router edge"]
        )),
        "{out}"
    );
    assert!(out.contains("tunnel zone \"midogw-vxlan\" already exists"), "{out}");
    {
        let t = open(&dir);
        let routers: BTreeSet<Uuid> = t.list::<Router>().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(routers, BTreeSet::from([first["router edge"], first["router tenant"]]), "unchanged");
    }

    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported", "--replace"]);
    assert!(ok, "{out}");
    assert!(out.contains("replaced a previous import: deleted 7 object(s)"), "{out}");
    let second = created(&out);
    let t = open(&dir);
    let routers: BTreeSet<Uuid> = t.list::<Router>().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(routers, BTreeSet::from([second["router edge"], second["router tenant"]]));
    assert!(!routers.contains(&first["router edge"]));
    // One of everything again: no leftovers of the first import.
    assert_eq!(t.list::<Bridge>().unwrap().len(), 1);
    assert_eq!(t.list::<Chain>().unwrap().len(), 1);
    assert_eq!(t.list::<Rule>().unwrap().len(), 2);
    assert_eq!(t.list::<TunnelZone>().unwrap().len(), 1);
    assert_eq!(t.list::<Port>().unwrap().len(), 7);
    let hosts: BTreeSet<Uuid> = t.list::<Host>().unwrap().iter().map(|h| h.id).collect();
    let gateway: Uuid = GATEWAY.parse().unwrap();
    assert_eq!(hosts, BTreeSet::from([second["host compute1"], second["host compute2"], gateway]));
    compile_store(&t);
}

#[test]
fn a_bad_file_fails_with_its_location_and_writes_nothing() {
    let dir = TempDir::new("import-bad");
    let cfg = config(&dir);
    let bad = dir.write(
        "bad.toml",
        "[[router]]\nname = \"r\"\n\n[[router.port]]\nname = \"a\"\naddress = \"10.1.0.1\"\ndpdk_port = \"uplink0\"\n\n\
         [[router.route]]\ndst = \"10.9.0.0/16\"\nport = \"zz\"\n",
    );
    let (ok, out) = import(bad.to_str().unwrap(), &cfg, &[]);
    assert!(!ok, "{out}");
    let shown = bad.display();
    assert!(out.contains(&format!("{shown}:6:11: address \"10.1.0.1\" is not an address/prefix")), "{out}");
    assert!(out.contains(&format!("{shown}:11:8: route port \"zz\": this router has no such port")), "{out}");
    assert!(out.contains("2 problem(s); nothing was written to the store"), "{out}");
    assert!(!store_path(&dir).exists(), "the store is not even opened");
}

#[test]
fn a_failure_midway_rolls_back_what_the_run_created() {
    let dir = TempDir::new("import-rollback");
    let cfg = config(&dir);
    // Something made over REST holds the MAC the example gives edge/uplink: the store refuses that
    // port after the chain, zone, hosts, routers and bridge were created.
    let other = {
        let t = open(&dir);
        let router = t
            .create_router(Router {
                id: Uuid::nil(),
                tenant_id: None,
                name: Some("other".into()),
                admin_state_up: true,
                inbound_filter_id: None,
                outbound_filter_id: None,
                load_balancer_id: None,
                as_number: None,
                inbound_mirror_ids: vec![],
                outbound_mirror_ids: vec![],
                local_redirect_chain_id: None,
                forward_chain_id: None,
            })
            .unwrap();
        let mut port: Port = serde_json::from_value(serde_json::json!({
            "type": "Router", "portSubnet": ["192.0.2.1/24"], "portMac": "02:00:00:00:01:01"
        }))
        .unwrap();
        port.id = Uuid::nil();
        t.create_port(router.id, port).unwrap();
        router.id
    };
    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(!ok, "{out}");
    assert!(out.contains("import failed: port edge/uplink"), "{out}");
    assert!(out.contains("02:00:00:00:01:01"), "the store's reason is shown: {out}");
    assert!(out.contains("rolled back the"), "{out}");
    let t = open(&dir);
    let routers: Vec<Uuid> = t.list::<Router>().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(routers, vec![other], "only what was there before");
    assert_eq!(t.list::<Port>().unwrap().len(), 1);
    assert!(t.list::<Bridge>().unwrap().is_empty());
    assert!(t.list::<Chain>().unwrap().is_empty());
    assert!(t.list::<TunnelZone>().unwrap().is_empty());
    assert!(t.list::<Host>().unwrap().is_empty(), "the hosts and the gateway's Host this run created are gone");
    // Nothing of the import was left behind: the same import succeeds once the clash is gone.
    t.delete_router(other).unwrap();
    drop(t);
    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(ok, "{out}");
}

/// Everything the example does not have: GRE, a local bridge port, groups, jumps, every kind of
/// route and condition, chains on routers, bridges and ports.
const RICH: &str = r#"
[underlay]
dpdk_port = "underlay0"
address = "192.168.7.1/24"

[[host]]
name = "h-gre"
tunnel_address = "192.168.7.21"
encap = "gre"

[[chain]]
name = "outer"

[[chain.rule]]
action = "jump"
jump_to = "inner"
hw_src = "02:00:00:00:00:09"
not = ["hw_src"]

[[chain.rule]]
action = "accept"
port_group = "pg"
ip_addr_group_src = "ag"
traversed_device = "r"
flow = "return"

[[chain]]
name = "inner"

[[chain.rule]]
action = "reject"
src = "10.0.0.0/8"
src_port = "1000-2000"
proto = 17
fragment_policy = "header"
out_ports = ["b/p1"]

[[chain.rule]]
action = "return"
dst = "10.2.0.0/24"
not = ["dst"]

[[port_group]]
name = "pg"
stateful = true
members = ["b/p1", "b/p2"]

[[ip_addr_group]]
name = "ag"
addresses = ["10.0.0.5", "2001:db8::5"]

[[router]]
name = "r"
outfilter = "outer"

[[router.port]]
name = "down"
address = "10.2.0.1/24"
peer = "b/up"

[[router.port]]
name = "out"
address = "198.51.100.1/24"
dpdk_port = "uplink0"
inbound_chain = "inner"

[[router.route]]
dst = "203.0.113.0/24"
type = "blackhole"

[[router.route]]
dst = "198.18.0.0/15"
type = "reject"
weight = 10

[[router.route]]
dst = "0.0.0.0/0"
port = "out"
gateway = "198.51.100.254"

[[router.route]]
dst = "10.8.0.0/16"
src = "10.2.0.0/24"
port = "down"
gateway = "10.2.0.9"
weight = 50

[[bridge]]
name = "b"
inbound_chain = "outer"

[[bridge.port]]
name = "up"

[[bridge.port]]
name = "p1"
dpdk_port = "vm0"
outbound_chain = "inner"

[[bridge.port]]
name = "p2"
host = "h-gre"
tunnel_key = 7
"#;

#[test]
fn groups_jumps_gre_and_every_route_kind_import_and_compile_like_the_file() {
    let dir = TempDir::new("import-rich");
    let cfg = config(&dir);
    let file = dir.write("rich.toml", RICH);
    let (ok, out) = import(file.to_str().unwrap(), &cfg, &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("skipped"), "{out}");
    let ids = created(&out);
    let id = |k: &str| *ids.get(k).unwrap_or_else(|| panic!("{k} not in the summary:\n{out}"));

    let t = open(&dir);
    let zone: TunnelZone = get(&t, id("zone midogw-gre"));
    assert_eq!(zone.zone_type, TunnelZoneType::Gre);
    assert_eq!(zone.members.len(), 1);
    let p1: Port = get(&t, id("port b/p1"));
    assert_eq!((p1.host_id, p1.interface_name.as_deref()), (Some(GATEWAY.parse().unwrap()), Some("vm0")));
    assert_eq!(p1.outbound_filter_id, Some(id("chain inner")));
    let p2: Port = get(&t, id("port b/p2"));
    assert_eq!((p2.host_id, p2.tunnel_key), (Some(id("host h-gre")), Some(7)));
    let groups = t.list::<control::PortGroup>().unwrap();
    assert_eq!(groups.len(), 1);
    assert!(groups[0].stateful);
    assert_eq!(groups[0].port_ids.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&p1.id, &p2.id]));
    let addr_groups = t.list::<control::IpAddrGroup>().unwrap();
    let addrs: BTreeSet<String> = addr_groups[0].ip_addr_ports.iter().map(|a| a.ip_address.to_string()).collect();
    assert_eq!(addrs, BTreeSet::from(["10.0.0.5".to_string(), "2001:db8::5".into()]));

    let outer: Chain = get(&t, id("chain outer"));
    let rules: Vec<Rule> = outer.rule_ids.iter().map(|r| get(&t, *r)).collect();
    assert_eq!((rules[0].rule_type, rules[0].jump_chain_id), (RuleType::Jump, Some(id("chain inner"))));
    assert!(rules[0].condition.inv_dl_src);
    let c = &rules[1].condition;
    assert_eq!((c.port_group, c.ip_addr_group_src), (Some(groups[0].id), Some(addr_groups[0].id)));
    assert_eq!(c.traversed_device, Some(id("router r")));
    assert!(c.match_return_flow && !c.match_forward_flow);
    let inner: Chain = get(&t, id("chain inner"));
    let rules: Vec<Rule> = inner.rule_ids.iter().map(|r| get(&t, *r)).collect();
    let c = &rules[0].condition;
    assert_eq!(rules[0].rule_type, RuleType::Reject);
    assert_eq!((c.nw_src_address.as_deref(), c.nw_src_length), (Some("10.0.0.0"), Some(8)));
    assert_eq!((c.tp_src, c.nw_proto), (Some(Range { start: 1000, end: 2000 }), Some(17)));
    assert_eq!(c.fragment_policy, Some(control::FragmentPolicy::Header));
    assert_eq!(c.out_ports, vec![p1.id]);
    assert_eq!(rules[1].rule_type, RuleType::Return);
    assert!(rules[1].condition.inv_nw_dst);

    // Compiled, it is the file's topology exactly.
    let store_snap = compile_store(&t);
    drop(t);
    let dump = midogw(&["topology", "check", file.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "--dump"]);
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stdout));
    let from_file: BTreeSet<String> = String::from_utf8(dump.stdout).unwrap().lines().map(String::from).collect();
    let from_store = describe(&store_snap);
    let missing: Vec<&String> = from_file.difference(&from_store).collect();
    let extra: Vec<&String> = from_store.difference(&from_file).collect();
    assert!(missing.is_empty() && extra.is_empty(), "file only: {missing:#?}\nstore only: {extra:#?}");
    assert!(from_file
        .iter()
        .any(|f| f.contains("route 10.8.0.0/16 from 10.2.0.0/24 normal") && f.contains("weight 50")));
    assert!(from_file
        .iter()
        .any(|f| f.contains("route 198.18.0.0/15 from 0.0.0.0/0 reject via - gateway - weight 10")));
    assert!(from_file.contains("host 192.168.7.21 Gre"));
    assert!(from_file.contains("rules 4"));
    assert_eq!(store_snap.port_groups()[0].members.len(), 2);
    assert_eq!(store_snap.ip_addr_groups()[0].addresses.len(), 2);
}

#[test]
fn imports_into_zookeeper() {
    let zk = ZkServer::start("import");
    let dir = TempDir::new("import-zk");
    let root = "/import-test";
    let store = format!("[store]\nkind = \"zookeeper\"\nhosts = \"{}\"\nroot = \"{root}\"\n", zk.hosts());
    let cfg = config_with_store(&dir, &store);
    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("imported into zookeeper://{}{root}", zk.hosts())), "{out}");
    let (ok, out) = import(EXAMPLE, &cfg, &["--skip-unsupported"]);
    assert!(!ok && out.contains("imported earlier: use --replace"), "{out}");

    let client = ZookeeperConfig { hosts: zk.hosts(), root: root.into(), ..Default::default() };
    let store = ZookeeperStore::start(client).expect("ZooKeeper client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while control::Store::version(&store).is_err() {
        assert!(std::time::Instant::now() < deadline, "no ZooKeeper session");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let t = Topology::new(store);
    assert_eq!(t.list::<Router>().unwrap().len(), 2);
    let store_snap = compile_store(&t);
    let dump = midogw(&["topology", "check", EXAMPLE, "--config", cfg.to_str().unwrap(), "--dump"]);
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stdout));
    let from_file: BTreeSet<String> = String::from_utf8(dump.stdout).unwrap().lines().map(String::from).collect();
    let from_store = describe(&store_snap);
    assert!(from_store.is_subset(&from_file), "{:#?}", from_store.difference(&from_file).collect::<Vec<_>>());
    let missing: Vec<&String> = from_file.difference(&from_store).collect();
    assert_eq!(missing.len(), 2, "only the two skipped IPv6 routes: {missing:#?}");
}

/// Ctrl-C (SIGINT) or SIGTERM during an import: the run stops between store calls and rolls back
/// what it created, as it does when the store refuses a step, instead of dying with half the file
/// in the store (which a second import then refuses as name clashes).
#[test]
fn an_import_stopped_by_a_signal_rolls_back_what_it_created() {
    let dir = TempDir::new("import-signal");
    let cfg = config(&dir);
    const CHAINS: usize = 5_000;
    let text: String = (0..CHAINS).map(|i| format!("[[chain]]\nname = \"c{i}\"\n")).collect();
    let file = dir.write("many.toml", &text);
    let child = Command::new(MIDOGW)
        .args(["topology", "import", file.to_str().unwrap(), "--config", cfg.to_str().unwrap()])
        .env("MIDOGW_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the store exists, the import is writing: let it write a while, then interrupt it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !store_path(&dir).exists() {
        assert!(std::time::Instant::now() < deadline, "the import never opened the store");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the import finished before the signal: raise CHAINS\n{said}");
    let left = open(&dir).list::<Chain>().unwrap().len();
    assert_eq!(left, 0, "chains the interrupted import of {CHAINS} left in the store ({:?}):\n{said}", out.status);
}
