//! The gateway scenarios' topology files (docs/topology.md), read for two things: the MAC of the
//! router port each memif port is bound to (the destination MAC of generated frames), and a
//! `Snapshot` for the in-process harness (`callgrind` on `net_ring`), which runs the pipeline
//! without the appliance binary.
//!
//! The appliance's own loader (appliance/topology.rs, with line/column diagnostics) lives in the
//! binary crate, so this is a second, plain reader of the same format: routers, ports (address,
//! mac or the derived default, dpdk_port or peer) and routes. It refuses what it does not know;
//! `midogw topology check` stays the reference. The runner hands the file itself to `midogw run`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use midogw::flowtable::topology::{PortId, Route, RouteType, Snapshot, SnapshotBuilder, Uuid};
use midogw::flowtable::wire::EthernetAddress;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The `[[port]]` names the runner gives the two memif ports; topology files bind to them.
pub const DPDK_PORT_NAMES: [&str; 2] = ["up0", "down0"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    router: Vec<RawRouter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    name: String,
    #[serde(default)]
    port: Vec<RawPort>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    address: String,
    mac: Option<String>,
    dpdk_port: Option<String>,
    peer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    dst: String,
    src: Option<String>,
    gateway: Option<String>,
    port: Option<String>,
    weight: Option<u32>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A router port bound to one of the runner's DPDK ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundPort {
    /// Its router, by position in the file.
    pub router: usize,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its address and connected prefix (`198.18.255.254/16`).
    pub address: IpNet,
}

/// A topology file, read.
#[derive(Debug)]
pub struct GatewayTopology {
    path: PathBuf,
    raw: RawFile,
}

impl GatewayTopology {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<GatewayTopology> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses a topology file's text; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> Result<GatewayTopology> {
        let raw: RawFile =
            toml::from_str(text).map_err(|source| Error::Toml { what: path.display().to_string(), source })?;
        let topo = GatewayTopology { path: path.into(), raw };
        for name in DPDK_PORT_NAMES {
            topo.router_mac(name)?;
        }
        Ok(topo)
    }

    fn bad(&self, reason: String) -> Error {
        Error::Build(format!("topology {}: {reason}", self.path.display()))
    }

    /// The MAC of the router port bound to the DPDK port `dpdk_port` (by `[[port]]` name): where
    /// frames entering that port are addressed.
    pub fn router_mac(&self, dpdk_port: &str) -> Result<[u8; 6]> {
        for (ri, r) in self.raw.router.iter().enumerate() {
            for (pi, p) in r.port.iter().enumerate() {
                if p.dpdk_port.as_deref() == Some(dpdk_port) {
                    return match &p.mac {
                        None => Ok(default_mac(ri, pi)),
                        Some(m) => parse_mac(m).ok_or_else(|| self.bad(format!("mac {m:?} is not a unicast MAC"))),
                    };
                }
            }
        }
        Err(self.bad(format!("no router port has dpdk_port = {dpdk_port:?}")))
    }

    /// The router port bound to the DPDK port `dpdk_port`: its router (file order), MAC and
    /// address with the connected prefix (what a peer forwarder needs to route like it).
    pub fn router_port(&self, dpdk_port: &str) -> Result<BoundPort> {
        let mac = self.router_mac(dpdk_port)?;
        for (ri, r) in self.raw.router.iter().enumerate() {
            for p in &r.port {
                if p.dpdk_port.as_deref() == Some(dpdk_port) {
                    let address = p
                        .address
                        .parse::<IpNet>()
                        .map_err(|_| self.bad(format!("{:?} is not an address/prefix", p.address)))?;
                    return Ok(BoundPort { router: ri, mac, address });
                }
            }
        }
        Err(self.bad(format!("no router port has dpdk_port = {dpdk_port:?}")))
    }

    /// How many routers a frame crosses from the router of DPDK port `from` to the router of
    /// `to` over the routers' interior links (`peer`): 1 when both are on one router.
    pub fn routers_between(&self, from: &str, to: &str) -> Result<u8> {
        let (start, goal) = (self.router_port(from)?.router, self.router_port(to)?.router);
        let index: BTreeMap<&str, usize> =
            self.raw.router.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
        // A link is declared on one side or both; it joins both routers either way.
        let mut links = vec![Vec::new(); self.raw.router.len()];
        for (r, router) in self.raw.router.iter().enumerate() {
            for p in &router.port {
                if let Some(&other) =
                    p.peer.as_deref().and_then(|peer| peer.split_once('/')).and_then(|(n, _)| index.get(n))
                {
                    links[r].push(other);
                    links[other].push(r);
                }
            }
        }
        let mut hops = vec![None; self.raw.router.len()];
        hops[start] = Some(1u8);
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(r) = queue.pop_front() {
            let here = hops[r].unwrap_or(1);
            if r == goal {
                return Ok(here);
            }
            for &next in &links[r] {
                if hops[next].is_none() {
                    hops[next] = Some(here.saturating_add(1));
                    queue.push_back(next);
                }
            }
        }
        Err(self.bad(format!("no path of router links from {from:?} to {to:?}")))
    }

    /// The snapshot, with `dpdk_ports` mapping `[[port]]` names to DPDK port ids.
    pub fn snapshot(&self, dpdk_ports: &[(&str, u16)]) -> Result<Snapshot> {
        let mut b = SnapshotBuilder::new(1);
        let mut next_uuid = 0u128;
        let mut uuid = || {
            next_uuid += 1;
            Uuid(next_uuid)
        };
        let net = |s: &str| s.parse::<IpNet>().map_err(|_| self.bad(format!("{s:?} is not an address/prefix")));
        let mut ports: BTreeMap<(&str, &str), (PortId, IpNet)> = BTreeMap::new();
        let mut routers = Vec::new();
        for (ri, r) in self.raw.router.iter().enumerate() {
            let rid = b.add_router(uuid());
            routers.push(rid);
            for (pi, p) in r.port.iter().enumerate() {
                let address = net(&p.address)?;
                let mac = match &p.mac {
                    None => default_mac(ri, pi),
                    Some(m) => parse_mac(m).ok_or_else(|| self.bad(format!("mac {m:?} is not a unicast MAC")))?,
                };
                let id = b.add_router_port(rid, uuid(), EthernetAddress(mac), &[address]);
                if let Some(d) = &p.dpdk_port {
                    let &(_, dpdk) = dpdk_ports
                        .iter()
                        .find(|(n, _)| n == d)
                        .ok_or_else(|| self.bad(format!("no DPDK port named {d:?}")))?;
                    b.bind_local(id, dpdk);
                }
                if ports.insert((&r.name, &p.name), (id, address)).is_some() {
                    return Err(self.bad(format!("port {}/{} declared twice", r.name, p.name)));
                }
            }
        }
        let mut linked = std::collections::BTreeSet::new();
        for r in &self.raw.router {
            for p in &r.port {
                let Some(peer) = &p.peer else { continue };
                let (pr, pp) =
                    peer.split_once('/').ok_or_else(|| self.bad(format!("peer {peer:?} is not ROUTER/PORT")))?;
                let (a, _) = ports[&(r.name.as_str(), p.name.as_str())];
                let &(other, _) = ports.get(&(pr, pp)).ok_or_else(|| self.bad(format!("no peer port {peer:?}")))?;
                if linked.insert((a.min(other), a.max(other))) {
                    b.link(a, other);
                }
            }
        }
        for (r, &rid) in self.raw.router.iter().zip(&routers) {
            for route in &r.route {
                let dst = net(&route.dst)?.trunc();
                let src = match &route.src {
                    Some(s) => net(s)?.trunc(),
                    None if dst.addr().is_ipv4() => IpNet::V4(Default::default()),
                    None => IpNet::V6(Default::default()),
                };
                let weight = route.weight.unwrap_or(100);
                let kind = match route.kind.as_deref() {
                    None | Some("normal") => RouteType::Normal,
                    Some("blackhole") => RouteType::Blackhole,
                    Some("reject") => RouteType::Reject,
                    Some(other) => return Err(self.bad(format!("route type {other:?}"))),
                };
                let built = if kind == RouteType::Normal {
                    let name = route.port.as_deref().ok_or_else(|| self.bad("a normal route needs a port".into()))?;
                    let &(port, _) = ports
                        .get(&(r.name.as_str(), name))
                        .ok_or_else(|| self.bad(format!("route port {name:?} not on router {}", r.name)))?;
                    let gateway = match &route.gateway {
                        Some(g) => Some(
                            g.parse::<IpAddr>().map_err(|_| self.bad(format!("gateway {g:?} is not an address")))?,
                        ),
                        None => None,
                    };
                    Route::normal(uuid(), src, dst, port, gateway, weight)
                } else {
                    let mut route = Route::without_port(uuid(), dst, kind, weight);
                    route.src = src;
                    route
                };
                b.add_route(rid, built);
            }
        }
        b.build().map_err(|e| self.bad(format!("inconsistent: {e}")))
    }
}

/// `02:6d:67:RR:PP:01`, the appliance's default for port `PP` of router `RR` (file order).
fn default_mac(router: usize, port: usize) -> [u8; 6] {
    [0x02, 0x6d, 0x67, router as u8, port as u8, 0x01]
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    (parts.next().is_none() && mac[0] & 1 == 0).then_some(mac)
}

/// Resolves a scenario's topology path: absolute as given; relative against the current
/// directory, then against the source tree this binary was built from (scenario tables name
/// files such as `perf/topologies/gateway-one-router.toml` from the repository root).
pub fn resolve(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() || p.exists() {
        return p.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p);
    if in_tree.exists() {
        in_tree
    } else {
        p.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_topologies_build_and_name_their_router_macs() {
        let one = GatewayTopology::load(&resolve("perf/topologies/gateway-one-router.toml")).unwrap();
        assert_eq!(one.router_mac("up0").unwrap(), [2, 0, 0, 0, 0x10, 1]);
        assert_eq!(one.router_mac("down0").unwrap(), [2, 0, 0, 0, 0x10, 2]);
        let snap = one.snapshot(&[("up0", 0), ("down0", 1)]).unwrap();
        assert_eq!(snap.generation(), 1);
        let two = GatewayTopology::load(&resolve("perf/topologies/gateway-edge-tenant.toml")).unwrap();
        assert_eq!(two.router_mac("down0").unwrap(), [2, 0, 0, 0, 0x20, 2]);
        two.snapshot(&[("up0", 0), ("down0", 1)]).unwrap();
        let north = one.router_port("up0").unwrap();
        assert_eq!((north.router, north.address), (0, "198.18.255.254/16".parse().unwrap()));
        assert_eq!(one.routers_between("up0", "down0").unwrap(), 1);
        assert_eq!(two.routers_between("up0", "down0").unwrap(), 2);
        assert_eq!(two.routers_between("down0", "up0").unwrap(), 2);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let p = Path::new("t.toml");
        let unbound =
            "[[router]]\nname = \"r\"\n[[router.port]]\nname = \"a\"\naddress = \"10.0.0.1/24\"\ndpdk_port = \"up0\"\n";
        let err = GatewayTopology::parse(unbound, p).unwrap_err().to_string();
        assert!(err.contains("down0"), "{err}");
        let both =
            format!("{unbound}[[router.port]]\nname = \"b\"\naddress = \"10.0.1.1/24\"\ndpdk_port = \"down0\"\n");
        let t = GatewayTopology::parse(&both, p).unwrap();
        assert_eq!(t.router_mac("down0").unwrap(), [2, 0x6d, 0x67, 0, 1, 1], "derived default");
        assert!(t.snapshot(&[("up0", 0)]).is_err(), "down0 not a DPDK port");
        let typo = both.replace("address = \"10.0.1.1/24\"", "adress = \"10.0.1.1/24\"");
        assert!(GatewayTopology::parse(&typo, p).is_err());
        let multicast = both.replace("name = \"a\"", "name = \"a\"\nmac = \"01:00:00:00:00:01\"");
        assert!(GatewayTopology::parse(&multicast, p).is_err());
    }
}
