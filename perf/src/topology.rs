//! The gateway scenarios' topology files (docs/topology.md), read for three things: the MAC of the
//! router port each memif port is bound to (the destination MAC of generated frames), the tunnel
//! when port 1 (`down0`) is the `[underlay]` rather than a router port, and a `Snapshot` for the
//! in-process harness (`callgrind` on `net_ring`), which runs the pipeline without the appliance
//! binary.
//!
//! The appliance's own loader (appliance/topology.rs, with line/column diagnostics) lives in the
//! binary crate, so this is a second, plain reader of the same format: `[underlay]` (dpdk_port,
//! address, vxlan_port), `[[host]]`s, routers, ports (address, mac or the derived default,
//! dpdk_port, peer or host + tunnel_key) and routes. It refuses what it does not know;
//! `midogw topology check` stays the reference. The runner hands the file itself to `midogw run`.
//!
//! A tunnel topology: `up0` is a router port (the uplink), `down0` the underlay, and exactly one
//! router port is bound on a remote `[[host]]` on the underlay subnet. The generator plays that
//! compute host on port 1 ([`COMPUTE_HOST_MAC`] on the underlay, side B's host inside the tunnel);
//! the runner gives the device's port 1 the MAC [`GATEWAY_UNDERLAY_MAC`] so the frames the
//! generator builds beforehand carry the right outer destination.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use midogw::flowtable::topology::{self as ft, PortId, Route, RouteType, Snapshot, SnapshotBuilder, Underlay, Uuid};
use midogw::flowtable::wire::EthernetAddress;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::packet::{Encap, Tunnel, VXLAN_PORT};

/// The `[[port]]` names the runner gives the two memif ports; topology files bind to them.
pub const DPDK_PORT_NAMES: [&str; 2] = ["up0", "down0"];

/// The device's underlay port MAC in tunnel scenarios (the memif server's `mac=` devarg): the
/// outer destination of the frames the generator sends as the compute host.
pub const GATEWAY_UNDERLAY_MAC: [u8; 6] = [0x02, 0x6d, 0x67, 0xff, 0x00, 0x01];

/// The compute host's underlay MAC, which the generator answers the gateway's underlay ARP with.
pub const COMPUTE_HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0c, 0x01];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    underlay: Option<RawUnderlay>,
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    router: Vec<RawRouter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnderlay {
    dpdk_port: String,
    address: String,
    vxlan_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    tunnel_address: Ipv4Addr,
    #[serde(default = "vxlan")]
    encap: Encap,
}

fn vxlan() -> Encap {
    Encap::Vxlan
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
    host: Option<String>,
    tunnel_key: Option<u32>,
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

/// The tunnel behind generator port 1 of a tunnel topology, from the topology file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelSide {
    /// The remote host's encapsulation.
    pub encap: Encap,
    /// The tunnel key of the router port bound on it (VNI or GRE key).
    pub key: u32,
    /// The compute host's tunnel address.
    pub host_address: Ipv4Addr,
    /// The gateway's underlay address.
    pub gateway_address: Ipv4Addr,
    /// The underlay's VXLAN UDP port.
    pub vxlan_port: u16,
    /// The MAC of the router port bound on the host: inner destination of what the host sends.
    pub router_mac: [u8; 6],
    /// The gateway's underlay address and prefix.
    pub underlay: Ipv4Net,
    /// The address and connected prefix of the router port bound on the host (the VMs behind it).
    pub overlay: IpNet,
}

impl TunnelSide {
    /// The tunnel as the compute host (the generator) sends through it, to the gateway's
    /// underlay port at `gateway_mac`.
    pub fn host_tunnel(&self, gateway_mac: [u8; 6]) -> Tunnel {
        Tunnel {
            encap: self.encap,
            src_mac: COMPUTE_HOST_MAC,
            dst_mac: gateway_mac,
            src_ip: self.host_address,
            dst_ip: self.gateway_address,
            key: self.key,
            src_port: crate::packet::FlowFields::of(0).entropy_port,
            dst_port: self.vxlan_port,
        }
    }
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
        let [up, down] = DPDK_PORT_NAMES;
        topo.router_mac(up)?;
        if topo.raw.underlay.as_ref().is_some_and(|u| u.dpdk_port == up) {
            return Err(topo.bad(format!("the underlay must be on {down:?}, {up:?} is the uplink")));
        }
        topo.tunnel()?;
        topo.port_macs()?;
        Ok(topo)
    }

    /// The MACs frames entering generator port 0 and port 1 are addressed to: the router ports
    /// bound to them, or for port 1 of a tunnel topology the router port bound on the remote host
    /// (the inner destination).
    pub fn port_macs(&self) -> Result<[[u8; 6]; 2]> {
        let [up, down] = DPDK_PORT_NAMES;
        let far = match self.tunnel()? {
            Some(t) => t.router_mac,
            None => self.router_mac(down)?,
        };
        Ok([self.router_mac(up)?, far])
    }

    /// The IPv4 addresses of the router ports [`GatewayTopology::port_macs`] names: where each
    /// side's hosts send what is for the gateway itself (their ARP).
    pub fn port_addresses(&self) -> Result<[Ipv4Addr; 2]> {
        let [up, down] = DPDK_PORT_NAMES;
        let far = match self.tunnel()? {
            Some(t) => t.overlay.addr(),
            None => self.router_port(down)?.address.addr(),
        };
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => Ok(a),
            IpAddr::V6(a) => Err(self.bad(format!("router port address {a} is not IPv4"))),
        };
        Ok([v4(self.router_port(up)?.address.addr())?, v4(far)?])
    }

    /// The tunnel behind port 1 when `[underlay] dpdk_port = "down0"`; `None` when port 1 is a
    /// router port. Refuses a tunnel topology the generator cannot play: not exactly one router
    /// port bound on a remote host, or that host off the underlay subnet.
    pub fn tunnel(&self) -> Result<Option<TunnelSide>> {
        let Some(u) = &self.raw.underlay else { return Ok(None) };
        if u.dpdk_port != DPDK_PORT_NAMES[1] {
            return Err(self.bad(format!("[underlay] dpdk_port must be {:?}", DPDK_PORT_NAMES[1])));
        }
        let net: Ipv4Net = u
            .address
            .parse()
            .map_err(|_| self.bad(format!("[underlay] address {:?} is not A.B.C.D/LEN", u.address)))?;
        let mut remote = Vec::new();
        for (ri, r) in self.raw.router.iter().enumerate() {
            for (pi, p) in r.port.iter().enumerate() {
                if let Some(h) = &p.host {
                    remote.push((ri, pi, p, h));
                }
            }
        }
        let [(ri, pi, port, host)] = remote[..] else {
            return Err(self.bad(format!(
                "a tunnel topology binds exactly one router port on a remote host (found {})",
                remote.len()
            )));
        };
        let h = self
            .raw
            .host
            .iter()
            .find(|h| &h.name == host)
            .ok_or_else(|| self.bad(format!("port {} is bound on an unknown host {host:?}", port.name)))?;
        if !net.contains(&h.tunnel_address) || h.tunnel_address == net.addr() {
            return Err(self.bad(format!(
                "host {} ({}) must be another address on the underlay subnet {net}",
                h.name, h.tunnel_address
            )));
        }
        let key =
            port.tunnel_key.ok_or_else(|| self.bad(format!("port {} has a host but no tunnel_key", port.name)))?;
        if key > 0xff_ffff {
            return Err(self.bad(format!("tunnel_key {key} is wider than 24 bits")));
        }
        Ok(Some(TunnelSide {
            encap: h.encap,
            key,
            host_address: h.tunnel_address,
            gateway_address: net.addr(),
            vxlan_port: u.vxlan_port.unwrap_or(VXLAN_PORT),
            router_mac: self.port_mac(ri, pi)?,
            underlay: net,
            overlay: port
                .address
                .parse::<IpNet>()
                .map_err(|_| self.bad(format!("{:?} is not an address/prefix", port.address)))?,
        }))
    }

    fn port_mac(&self, ri: usize, pi: usize) -> Result<[u8; 6]> {
        match &self.raw.router[ri].port[pi].mac {
            None => Ok(default_mac(ri, pi)),
            Some(m) => parse_mac(m).ok_or_else(|| self.bad(format!("mac {m:?} is not a unicast MAC"))),
        }
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
                    return self.port_mac(ri, pi);
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
        let dpdk = |d: &str| {
            dpdk_ports
                .iter()
                .find(|(n, _)| *n == d)
                .map(|&(_, id)| id)
                .ok_or_else(|| self.bad(format!("no DPDK port named {d:?}")))
        };
        if let (Some(u), Some(t)) = (&self.raw.underlay, self.tunnel()?) {
            let net: Ipv4Net = u.address.parse().map_err(|_| self.bad("[underlay] address".into()))?;
            let mut underlay = Underlay::new(dpdk(&u.dpdk_port)?, t.gateway_address, net.prefix_len());
            underlay.vxlan_port = t.vxlan_port;
            b.set_underlay(underlay);
        }
        let mut hosts = BTreeMap::new();
        for h in &self.raw.host {
            let encap = match h.encap {
                Encap::Vxlan => ft::Encap::Vxlan,
                Encap::Gre => ft::Encap::Gre,
            };
            if hosts.insert(h.name.as_str(), b.add_host(uuid(), IpAddr::V4(h.tunnel_address), encap)).is_some() {
                return Err(self.bad(format!("host {} declared twice", h.name)));
            }
        }
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
                    b.bind_local(id, dpdk(d)?);
                }
                if let Some(h) = &p.host {
                    let &host = hosts.get(h.as_str()).ok_or_else(|| self.bad(format!("no host {h:?}")))?;
                    let key = p
                        .tunnel_key
                        .ok_or_else(|| self.bad(format!("port {} has a host but no tunnel_key", p.name)))?;
                    b.bind_remote(id, host, key);
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
    use crate::packet::Encap;

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
    fn tunnel_topologies_name_the_tunnel_behind_port_1() {
        for (file, encap, key, host, mac) in [
            ("perf/topologies/gateway-vxlan.toml", Encap::Vxlan, 4097, [192, 0, 2, 11], [2, 0, 0, 0, 0x30, 2]),
            ("perf/topologies/gateway-gre.toml", Encap::Gre, 4098, [192, 0, 2, 12], [2, 0, 0, 0, 0x40, 2]),
        ] {
            let t = GatewayTopology::load(&resolve(file)).unwrap();
            let side = t.tunnel().unwrap().expect("port 1 is the underlay");
            assert_eq!(side.encap, encap);
            assert_eq!(side.key, key);
            assert_eq!(side.host_address, Ipv4Addr::from(host));
            assert_eq!(side.gateway_address, Ipv4Addr::new(192, 0, 2, 1));
            assert_eq!(side.vxlan_port, 4789);
            assert_eq!(side.router_mac, mac, "the router port bound on the host");
            assert_eq!(t.port_macs().unwrap()[1], mac, "port 1's frames go to it, inside the tunnel");
            let tunnel = side.host_tunnel(GATEWAY_UNDERLAY_MAC);
            assert_eq!((tunnel.src_mac, tunnel.dst_mac), (COMPUTE_HOST_MAC, GATEWAY_UNDERLAY_MAC));
            assert_eq!((tunnel.src_ip, tunnel.dst_ip), (side.host_address, side.gateway_address));
            let snap = t.snapshot(&[("up0", 0), ("down0", 1)]).unwrap();
            let u = snap.underlay().expect("underlay in the snapshot");
            assert_eq!((u.dpdk_port, u.address, u.prefix_len), (1, Ipv4Addr::new(192, 0, 2, 1), 24));
        }
        let plain = GatewayTopology::load(&resolve("perf/topologies/gateway-one-router.toml")).unwrap();
        assert_eq!(plain.tunnel().unwrap(), None);
    }

    #[test]
    fn tunnel_topologies_the_generator_cannot_play_are_refused() {
        let p = Path::new("t.toml");
        let good = std::fs::read_to_string(resolve("perf/topologies/gateway-vxlan.toml")).unwrap();
        assert!(GatewayTopology::parse(&good, p).is_ok());
        let cases = [
            (good.replace("dpdk_port = \"down0\"\naddress", "dpdk_port = \"up0\"\naddress"), "uplink"),
            (good.replace("tunnel_address = \"192.0.2.11\"", "tunnel_address = \"10.0.0.11\""), "underlay subnet"),
            (good.replace("host = \"compute1\"", "host = \"compute9\""), "unknown host"),
            (good.replace("tunnel_key = 4097", ""), "no tunnel_key"),
            (good.replace("tunnel_key = 4097", "tunnel_key = 16777216"), "24 bits"),
            (good.replace("host = \"compute1\"\ntunnel_key = 4097", ""), "exactly one"),
            (good.replace("encap = \"vxlan\"", "encap = \"geneve\""), "geneve"),
        ];
        for (text, why) in cases {
            let err = GatewayTopology::parse(&text, p).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
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
