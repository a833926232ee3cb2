//! The declarative topology file (docs/topology.md): routers, their ports (bound to a local DPDK
//! port by its config name, or linked to a peer router port) and routes, loaded into a
//! `flowtable::topology::Snapshot`. Every problem is reported with its line and column, like the
//! config file's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use ipnet::IpNet;
use midogw::flowtable::topology::{PortId, Route, RouteType, RouterId, Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::EthernetAddress;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{line_column, Problem, Problems};

/// Default route weight (MidoNet's default for routes created without one).
pub const DEFAULT_WEIGHT: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    router: Vec<Spanned<RawRouter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    name: Spanned<String>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    address: Spanned<String>,
    mac: Option<Spanned<String>>,
    dpdk_port: Option<Spanned<String>>,
    peer: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    dst: Spanned<String>,
    src: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    port: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
}

/// Reads and loads the topology file at `path`. `dpdk_ports` maps each `[[port]]` name of the main
/// config to its DPDK port id.
pub fn load(path: &Path, dpdk_ports: &[(String, u16)], generation: u64) -> Result<Snapshot, Problems> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&shown, &text, dpdk_ports, generation),
        Err(e) => Err(Problems {
            path: shown,
            list: vec![Problem { line: 0, column: 0, message: format!("cannot read the topology file: {e}") }],
        }),
    }
}

/// Parses and checks `text`; `path_for_messages` only labels the problems.
pub fn parse(
    path_for_messages: &str,
    text: &str,
    dpdk_ports: &[(String, u16)],
    generation: u64,
) -> Result<Snapshot, Problems> {
    let mut l = Loader { text, problems: Vec::new() };
    let snapshot = match toml::from_str::<RawFile>(text) {
        Ok(raw) => l.build(&raw, dpdk_ports, generation),
        Err(e) => {
            l.error(e.span().unwrap_or(0..0), e.message().trim_end().to_string());
            None
        }
    };
    match snapshot {
        Some(s) if l.problems.is_empty() => Ok(s),
        _ => {
            let mut list = l.problems;
            list.sort_by_key(|p| (p.line, p.column));
            Err(Problems { path: path_for_messages.to_string(), list })
        }
    }
}

struct Loader<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

/// A port as declared: its id and where its `peer` points.
struct PortInfo<'r> {
    id: PortId,
    net: Option<IpNet>,
    peer: Option<&'r Spanned<String>>,
}

impl Loader<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem { line, column, message: message.into() });
    }

    fn net(&mut self, v: &Spanned<String>, what: &str) -> Option<IpNet> {
        match v.get_ref().parse::<IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    v.span(),
                    format!("{what} {:?} is not an address/prefix such as \"10.0.0.1/24\"", v.get_ref()),
                );
                None
            }
        }
    }

    fn build(&mut self, raw: &RawFile, dpdk_ports: &[(String, u16)], generation: u64) -> Option<Snapshot> {
        let mut b = SnapshotBuilder::new(generation);
        let mut next_uuid = 0u128;
        let mut uuid = || {
            next_uuid += 1;
            Uuid(next_uuid)
        };
        let mut routers: BTreeMap<&str, (RouterId, BTreeMap<&str, PortInfo<'_>>)> = BTreeMap::new();
        let mut bound: BTreeMap<u16, &str> = BTreeMap::new();
        // Routers and ports first: routes and peers may name ports declared later.
        for (ri, router) in raw.router.iter().enumerate() {
            let r = router.get_ref();
            let rname = r.name.get_ref().as_str();
            if routers.contains_key(rname) {
                self.error(r.name.span(), format!("router {rname:?} is declared twice"));
                continue;
            }
            let rid = b.add_router(uuid());
            let mut ports = BTreeMap::new();
            for (pi, port) in r.port.iter().enumerate() {
                let p = port.get_ref();
                let pname = p.name.get_ref().as_str();
                if ports.contains_key(pname) {
                    self.error(p.name.span(), format!("router {rname:?} has two ports named {pname:?}"));
                    continue;
                }
                let net = self.net(&p.address, "address");
                let mac = match &p.mac {
                    None => Some(default_mac(ri, pi)),
                    Some(m) => match parse_mac(m.get_ref()) {
                        Some(mac) if mac.0[0] & 1 == 0 => Some(mac),
                        _ => {
                            self.error(
                                m.span(),
                                format!("mac {:?} is not a unicast MAC such as \"02:00:00:00:00:01\"", m.get_ref()),
                            );
                            None
                        }
                    },
                };
                let id =
                    b.add_router_port(rid, uuid(), mac.unwrap_or(EthernetAddress([2, 0, 0, 0, 0, 0])), net.as_slice());
                match (&p.dpdk_port, &p.peer) {
                    (Some(d), Some(_)) => {
                        self.error(d.span(), format!("port {rname}/{pname} has both dpdk_port and peer; give one"))
                    }
                    (Some(d), None) => match dpdk_ports.iter().find(|(n, _)| n == d.get_ref()) {
                        None => {
                            let known: Vec<&str> = dpdk_ports.iter().map(|(n, _)| n.as_str()).collect();
                            self.error(
                                d.span(),
                                format!(
                                    "no [[port]] named {:?} in the config (known: {})",
                                    d.get_ref(),
                                    known.join(", ")
                                ),
                            );
                        }
                        Some(&(_, dpdk)) => {
                            if let Some(other) = bound.insert(dpdk, d.get_ref()) {
                                let _ = other;
                                self.error(
                                    d.span(),
                                    format!("DPDK port {:?} is bound to two router ports", d.get_ref()),
                                );
                            } else {
                                b.bind_local(id, dpdk);
                            }
                        }
                    },
                    (None, _) => {}
                }
                ports.insert(pname, PortInfo { id, net, peer: p.peer.as_ref() });
            }
            routers.insert(rname, (rid, ports));
        }
        // Links: each pair once; a one-sided peer is enough.
        let mut linked: BTreeSet<(PortId, PortId)> = BTreeSet::new();
        for (rname, (_, ports)) in &routers {
            for (pname, info) in ports {
                let Some(peer) = info.peer else { continue };
                let Some((pr, pp)) = peer.get_ref().split_once('/') else {
                    self.error(peer.span(), format!("peer {:?} is not \"ROUTER/PORT\"", peer.get_ref()));
                    continue;
                };
                let Some(other) = routers.get(pr).and_then(|(_, ps)| ps.get(pp)) else {
                    self.error(peer.span(), format!("peer {:?}: no such router port", peer.get_ref()));
                    continue;
                };
                if other.id == info.id {
                    self.error(peer.span(), format!("port {rname}/{pname} is its own peer"));
                    continue;
                }
                if let Some(back) = other.peer {
                    if back.get_ref() != &format!("{rname}/{pname}") {
                        self.error(
                            peer.span(),
                            format!("peer {:?} names {:?} as its peer", peer.get_ref(), back.get_ref()),
                        );
                        continue;
                    }
                }
                let pair = (info.id.min(other.id), info.id.max(other.id));
                if linked.insert(pair) {
                    b.link(info.id, other.id);
                }
            }
        }
        for router in &raw.router {
            let r = router.get_ref();
            let Some((rid, ports)) = routers.get(r.name.get_ref().as_str()) else { continue };
            for route in &r.route {
                if let Some(route) = self.route(route.get_ref(), ports, &mut uuid) {
                    b.add_route(*rid, route);
                }
            }
        }
        if !self.problems.is_empty() {
            return None;
        }
        match b.build() {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(0..0, format!("inconsistent topology: {e}"));
                None
            }
        }
    }

    fn route(
        &mut self,
        r: &RawRoute,
        ports: &BTreeMap<&str, PortInfo<'_>>,
        uuid: &mut impl FnMut() -> Uuid,
    ) -> Option<Route> {
        let dst = self.net(&r.dst, "dst");
        let src = r.src.as_ref().map(|s| self.net(s, "src"));
        let kind = match r.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "normal")) => Some(RouteType::Normal),
            Some((_, "blackhole")) => Some(RouteType::Blackhole),
            Some((_, "reject")) => Some(RouteType::Reject),
            Some((k, other)) => {
                self.error(k.span(), format!("route type {other:?} is not one of normal, blackhole, reject"));
                None
            }
        };
        let weight = match &r.weight {
            None => Some(DEFAULT_WEIGHT),
            Some(w) => match u32::try_from(*w.get_ref()) {
                Ok(w) => Some(w),
                Err(_) => {
                    self.error(w.span(), format!("weight {} is out of range 0..=4294967295", w.get_ref()));
                    None
                }
            },
        };
        let gateway = match &r.gateway {
            None => Some(None),
            Some(g) => match g.get_ref().parse::<IpAddr>() {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    self.error(g.span(), format!("gateway {:?} is not an IP address", g.get_ref()));
                    None
                }
            },
        };
        let port = match &r.port {
            None => Some(None),
            Some(p) => match ports.get(p.get_ref().as_str()) {
                Some(info) => Some(Some(info)),
                None => {
                    self.error(p.span(), format!("route port {:?}: this router has no such port", p.get_ref()));
                    None
                }
            },
        };
        let (dst, kind, weight, gateway, port) = (dst?, kind?, weight?, gateway?, port?);
        let src = match src {
            Some(s) => s?,
            None if dst.addr().is_ipv4() => IpNet::V4(Default::default()),
            None => IpNet::V6(Default::default()),
        };
        if src.addr().is_ipv4() != dst.addr().is_ipv4() || gateway.is_some_and(|g| g.is_ipv4() != dst.addr().is_ipv4())
        {
            self.error(r.dst.span(), "route mixes IPv4 and IPv6 in dst, src and gateway");
            return None;
        }
        let (dst, src) = (dst.trunc(), src.trunc());
        match kind {
            RouteType::Normal => {
                let Some(info) = port else {
                    self.error(r.dst.span(), "a normal route needs a port");
                    return None;
                };
                if let (Some(g), Some(net)) = (gateway, info.net) {
                    if !net.contains(&g) {
                        let at = r.gateway.as_ref().map_or(r.dst.span(), |g| g.span());
                        self.error(at, format!("gateway {g} is not on the port's subnet {}", net.trunc()));
                        return None;
                    }
                }
                Some(Route::normal(uuid(), src, dst, info.id, gateway, weight))
            }
            _ => {
                let mut route = Route::without_port(uuid(), dst, kind, weight);
                route.src = src;
                Some(route)
            }
        }
    }
}

/// `02:6d:67:RR:PP:01` for port `PP` of router `RR` (both 0-based, file order).
fn default_mac(router: usize, port: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x6d, 0x67, router as u8, port as u8, 0x01])
}

fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Vec<(String, u16)> {
        vec![("up0".into(), 0), ("up1".into(), 1)]
    }

    const GOOD: &str = r#"
[[router]]
name = "edge"

[[router.port]]
name = "a"
address = "10.1.0.1/24"
mac = "02:00:00:00:01:01"
dpdk_port = "up0"

[[router.port]]
name = "b"
address = "10.2.0.1/24"
dpdk_port = "up1"

[[router.port]]
name = "to-tenant"
address = "169.254.0.1/30"
peer = "tenant/up"

[[router.route]]
dst = "10.0.0.0/16"
port = "to-tenant"
gateway = "169.254.0.2"

[[router.route]]
dst = "203.0.113.0/24"
type = "blackhole"

[[router.route]]
dst = "198.18.0.0/15"
type = "reject"
weight = 10

[[router]]
name = "tenant"

[[router.port]]
name = "up"
address = "169.254.0.2/30"

[[router.route]]
dst = "0.0.0.0/0"
port = "up"
gateway = "169.254.0.1"
"#;

    fn problems(text: &str) -> Vec<String> {
        parse("t.toml", text, &ports(), 1).unwrap_err().list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn good_topology_builds_a_snapshot() {
        let snap = parse("t.toml", GOOD, &ports(), 7).expect("valid");
        assert_eq!(snap.generation(), 7);
        assert_eq!(snap.routers().len(), 2);
        assert_eq!(snap.ports().len(), 4);
        let a = snap.port_by_dpdk_port(0).expect("up0 bound");
        assert_eq!(snap.port(a).as_router_port().unwrap().mac, EthernetAddress([2, 0, 0, 0, 1, 1]));
        let b = snap.port_by_dpdk_port(1).expect("up1 bound");
        assert_eq!(snap.port(b).as_router_port().unwrap().mac, default_mac(0, 1));
        assert!(snap.port_by_dpdk_port(2).is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let text = r#"
[[router]]
name = "r"

[[router.port]]
name = "a"
address = "10.1.0.1"
dpdk_port = "up9"

[[router.port]]
name = "a"
address = "10.1.0.1/24"

[[router.port]]
name = "c"
address = "10.3.0.1/24"
mac = "01:00:00:00:00:01"
peer = "nowhere/x"

[[router.route]]
dst = "10.9.0.0/16"
port = "zz"
type = "sideways"
"#;
        let got = problems(text);
        let want = [
            "7:11: address \"10.1.0.1\" is not an address/prefix",
            "8:13: no [[port]] named \"up9\" in the config (known: up0, up1)",
            "11:8: router \"r\" has two ports named \"a\"",
            "17:7: mac \"01:00:00:00:00:01\" is not a unicast MAC",
            "18:8: peer \"nowhere/x\": no such router port",
            "22:8: route port \"zz\": this router has no such port",
            "23:8: route type \"sideways\" is not one of normal, blackhole, reject",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g:?} should start with {w:?}");
        }
    }

    #[test]
    fn routes_are_checked() {
        let base =
            "[[router]]\nname = \"r\"\n[[router.port]]\nname = \"a\"\naddress = \"10.1.0.1/24\"\ndpdk_port = \"up0\"\n";
        let got = problems(&format!("{base}[[router.route]]\ndst = \"0.0.0.0/0\"\n"));
        assert!(got[0].contains("a normal route needs a port"), "{got:?}");
        let got =
            problems(&format!("{base}[[router.route]]\ndst = \"0.0.0.0/0\"\nport = \"a\"\ngateway = \"10.9.0.1\"\n"));
        assert!(got[0].contains("not on the port's subnet 10.1.0.0/24"), "{got:?}");
        let got = problems(&format!("{base}[[router.route]]\ndst = \"::/0\"\nport = \"a\"\ngateway = \"10.1.0.9\"\n"));
        assert!(got[0].contains("mixes IPv4 and IPv6"), "{got:?}");
        let got = problems(&format!("{base}[[router.route]]\ndst = \"0.0.0.0/0\"\nport = \"a\"\nweight = -1\n"));
        assert!(got[0].contains("weight -1 is out of range"), "{got:?}");
    }

    #[test]
    fn bindings_and_peers_are_checked() {
        let text =
            "[[router]]\nname = \"r\"\n[[router.port]]\nname = \"a\"\naddress = \"10.1.0.1/24\"\ndpdk_port = \"up0\"\n\
                    [[router.port]]\nname = \"b\"\naddress = \"10.2.0.1/24\"\ndpdk_port = \"up0\"\n\
                    [[router.port]]\nname = \"c\"\naddress = \"10.3.0.1/24\"\ndpdk_port = \"up1\"\npeer = \"r/a\"\n\
                    [[router.port]]\nname = \"d\"\naddress = \"10.4.0.1/24\"\npeer = \"r/d\"\n";
        let got = problems(text);
        assert!(got.iter().any(|p| p.contains("\"up0\" is bound to two router ports")), "{got:?}");
        assert!(got.iter().any(|p| p.contains("r/c has both dpdk_port and peer")), "{got:?}");
        assert!(got.iter().any(|p| p.contains("r/d is its own peer")), "{got:?}");
    }

    #[test]
    fn syntax_errors_and_unknown_keys_have_locations() {
        let got = problems("[[router]]\nname = \"r\"\ncolour = \"red\"\n");
        assert!(got[0].starts_with("3:1: unknown field `colour`"), "{got:?}");
    }
}
