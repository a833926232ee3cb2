//! The declarative topology file (docs/topology.md): the underlay endpoint, hosts, rule chains,
//! routers and bridges with their ports (bound to a local DPDK port by its config name, bound on a
//! remote host with a tunnel key, or linked to a peer port), static MAC entries and routes, loaded
//! into a `flowtable::topology::Snapshot`. Every problem is reported with its line and column,
//! like the config file's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use ipnet::IpNet;
use midogw::flowtable::chain::{Condition, Field, FlowDirection, FragmentPolicy, MacMatch, PortRange, Rule, RuleKind};
use midogw::flowtable::topology::{
    BridgeId, ChainId, DeviceId, Encap, HostId, IpAddrGroupId, PortGroupId, PortId, Route, RouteType, RouterId,
    Snapshot, SnapshotBuilder, Underlay, Uuid,
};
use midogw::flowtable::wire::EthernetAddress;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{line_column, Problem, Problems};

/// Default route weight (MidoNet's default for routes created without one).
pub const DEFAULT_WEIGHT: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) underlay: Option<Spanned<RawUnderlay>>,
    #[serde(default)]
    pub(crate) host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    pub(crate) chain: Vec<Spanned<RawChain>>,
    #[serde(default)]
    pub(crate) port_group: Vec<Spanned<RawPortGroup>>,
    #[serde(default)]
    pub(crate) ip_addr_group: Vec<Spanned<RawIpAddrGroup>>,
    #[serde(default)]
    pub(crate) router: Vec<Spanned<RawRouter>>,
    #[serde(default)]
    pub(crate) bridge: Vec<Spanned<RawBridge>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUnderlay {
    pub(crate) dpdk_port: Spanned<String>,
    pub(crate) address: Spanned<String>,
    pub(crate) gateway: Option<Spanned<String>>,
    pub(crate) vxlan_port: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    pub(crate) name: Spanned<String>,
    pub(crate) tunnel_address: Spanned<String>,
    pub(crate) encap: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortGroup {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) stateful: bool,
    pub(crate) members: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpAddrGroup {
    pub(crate) name: Spanned<String>,
    pub(crate) addresses: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChain {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) action: Spanned<String>,
    pub(crate) jump_to: Option<Spanned<String>>,
    pub(crate) hw_src: Option<Spanned<String>>,
    pub(crate) hw_dst: Option<Spanned<String>>,
    pub(crate) ethertype: Option<Spanned<i64>>,
    pub(crate) in_ports: Option<Spanned<Vec<String>>>,
    pub(crate) out_ports: Option<Spanned<Vec<String>>>,
    pub(crate) tos: Option<Spanned<i64>>,
    pub(crate) proto: Option<Spanned<ProtoSpec>>,
    pub(crate) src: Option<Spanned<String>>,
    pub(crate) dst: Option<Spanned<String>>,
    pub(crate) src_port: Option<Spanned<PortSpec>>,
    pub(crate) dst_port: Option<Spanned<PortSpec>>,
    pub(crate) fragment_policy: Option<Spanned<String>>,
    pub(crate) port_group: Option<Spanned<String>>,
    pub(crate) ip_addr_group_src: Option<Spanned<String>>,
    pub(crate) ip_addr_group_dst: Option<Spanned<String>>,
    pub(crate) traversed_device: Option<Spanned<String>>,
    pub(crate) flow: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) not: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum ProtoSpec {
    Number(i64),
    Name(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum PortSpec {
    One(i64),
    Range(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Addresses {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    pub(crate) name: Spanned<String>,
    pub(crate) infilter: Option<Spanned<String>>,
    pub(crate) outfilter: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub(crate) route: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBridge {
    pub(crate) name: Spanned<String>,
    pub(crate) inbound_chain: Option<Spanned<String>>,
    pub(crate) outbound_chain: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub(crate) static_mac: Vec<Spanned<RawStaticMac>>,
}

/// A router or bridge port (a bridge port has no address or MAC).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub(crate) name: Spanned<String>,
    pub(crate) address: Option<Spanned<Addresses>>,
    pub(crate) mac: Option<Spanned<String>>,
    pub(crate) dpdk_port: Option<Spanned<String>>,
    pub(crate) peer: Option<Spanned<String>>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) tunnel_key: Option<Spanned<i64>>,
    pub(crate) inbound_chain: Option<Spanned<String>>,
    pub(crate) outbound_chain: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStaticMac {
    pub(crate) mac: Spanned<String>,
    pub(crate) port: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) dst: Spanned<String>,
    pub(crate) src: Option<Spanned<String>>,
    pub(crate) gateway: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<Spanned<String>>,
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
    let mut l = Loader { text, dpdk_ports, problems: Vec::new() };
    let snapshot = match toml::from_str::<RawFile>(text) {
        Ok(raw) => l.build(&raw, generation),
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
    dpdk_ports: &'a [(String, u16)],
    problems: Vec<Problem>,
}

/// A port as declared: its id, its subnets (routes check gateways against them) and where its
/// `peer` points.
struct PortInfo<'r> {
    id: PortId,
    nets: Vec<IpNet>,
    peer: Option<&'r Spanned<String>>,
}

/// Port groups and IP address groups by name.
#[derive(Default)]
struct Groups<'r> {
    ports: BTreeMap<&'r str, PortGroupId>,
    addrs: BTreeMap<&'r str, IpAddrGroupId>,
}

/// A router or a bridge, by name (one namespace: peers and rules name ports as `"DEVICE/PORT"`).
struct Device<'r> {
    kind: DeviceKind,
    ports: BTreeMap<&'r str, PortInfo<'r>>,
}

#[derive(Clone, Copy)]
enum DeviceKind {
    Router(RouterId),
    Bridge(BridgeId),
}

fn uuids() -> impl FnMut() -> Uuid {
    let mut next = 0u128;
    move || {
        next += 1;
        Uuid(next)
    }
}

impl<'a> Loader<'a> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem { line, column, message: message.into() });
    }

    fn net(&mut self, v: &Spanned<String>, what: &str) -> Option<IpNet> {
        self.net_str(v.get_ref(), v.span(), what)
    }

    fn net_str(&mut self, s: &str, span: Range<usize>, what: &str) -> Option<IpNet> {
        match s.parse::<IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(span, format!("{what} {s:?} is not an address/prefix such as \"10.0.0.1/24\""));
                None
            }
        }
    }

    fn ip(&mut self, v: &Spanned<String>, what: &str) -> Option<IpAddr> {
        match v.get_ref().parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(v.span(), format!("{what} {:?} is not an IP address", v.get_ref()));
                None
            }
        }
    }

    fn mac(&mut self, v: &Spanned<String>) -> Option<EthernetAddress> {
        match parse_mac(v.get_ref()) {
            Some(mac) if mac.0[0] & 1 == 0 && mac.0 != [0; 6] => Some(mac),
            _ => {
                self.error(
                    v.span(),
                    format!("mac {:?} is not a unicast MAC such as \"02:00:00:00:00:01\"", v.get_ref()),
                );
                None
            }
        }
    }

    fn dpdk_port(&mut self, d: &Spanned<String>) -> Option<u16> {
        match self.dpdk_ports.iter().find(|(n, _)| n == d.get_ref()) {
            Some(&(_, id)) => Some(id),
            None => {
                let known: Vec<&str> = self.dpdk_ports.iter().map(|(n, _)| n.as_str()).collect();
                self.error(
                    d.span(),
                    format!("no [[port]] named {:?} in the config (known: {})", d.get_ref(), known.join(", ")),
                );
                None
            }
        }
    }

    fn chain_ref(&mut self, chains: &BTreeMap<&str, ChainId>, c: Option<&Spanned<String>>) -> Option<ChainId> {
        let c = c?;
        match chains.get(c.get_ref().as_str()) {
            Some(&id) => Some(id),
            None => {
                self.error(c.span(), format!("no [[chain]] named {:?}", c.get_ref()));
                None
            }
        }
    }

    fn build<'r>(&mut self, raw: &'r RawFile, generation: u64) -> Option<Snapshot> {
        let mut b = SnapshotBuilder::new(generation);
        let mut uuid = uuids();
        // Chains and hosts first: everything else may name them.
        let mut chains: BTreeMap<&str, ChainId> = BTreeMap::new();
        for c in &raw.chain {
            let name = c.get_ref().name.get_ref().as_str();
            if chains.contains_key(name) {
                self.error(c.get_ref().name.span(), format!("chain {name:?} is declared twice"));
                continue;
            }
            chains.insert(name, b.add_chain(uuid(), name));
        }
        let mut hosts: BTreeMap<&str, HostId> = BTreeMap::new();
        for h in &raw.host {
            let h = h.get_ref();
            let name = h.name.get_ref().as_str();
            let addr = self.ip(&h.tunnel_address, "tunnel_address");
            let encap = match h.encap.as_ref().map(|e| (e, e.get_ref().as_str())) {
                None | Some((_, "vxlan")) => Some(Encap::Vxlan),
                Some((_, "gre")) => Some(Encap::Gre),
                Some((e, other)) => {
                    self.error(e.span(), format!("encap {other:?} is not one of vxlan, gre"));
                    None
                }
            };
            if addr.is_some_and(|a| !a.is_ipv4()) {
                self.error(h.tunnel_address.span(), "tunnel_address must be IPv4 (the underlay is IPv4)");
                continue;
            }
            if hosts.contains_key(name) {
                self.error(h.name.span(), format!("host {name:?} is declared twice"));
                continue;
            }
            if let (Some(addr), Some(encap)) = (addr, encap) {
                hosts.insert(name, b.add_host(uuid(), addr, encap));
            }
        }
        let mut bound: BTreeMap<u16, ()> = BTreeMap::new();
        let mut keys: BTreeMap<i64, ()> = BTreeMap::new();
        if let Some(u) = &raw.underlay {
            if let Some(underlay) = self.underlay(u.get_ref(), &mut bound) {
                b.set_underlay(underlay);
            }
        }
        // Devices and their ports: peers, static MACs, routes and rules may name ports declared later.
        let mut devices: BTreeMap<&str, Device<'r>> = BTreeMap::new();
        for (ri, router) in raw.router.iter().enumerate() {
            let r = router.get_ref();
            let rname = r.name.get_ref().as_str();
            if devices.contains_key(rname) {
                self.error(r.name.span(), format!("device {rname:?} is declared twice"));
                continue;
            }
            let rid = b.add_router(uuid());
            let (infilter, outfilter) =
                (self.chain_ref(&chains, r.infilter.as_ref()), self.chain_ref(&chains, r.outfilter.as_ref()));
            b.set_router_filters(rid, infilter, outfilter);
            let mut ports = BTreeMap::new();
            for (pi, port) in r.port.iter().enumerate() {
                let p = port.get_ref();
                let pname = p.name.get_ref().as_str();
                if ports.contains_key(pname) {
                    self.error(p.name.span(), format!("router {rname:?} has two ports named {pname:?}"));
                    continue;
                }
                let nets: Vec<IpNet> = match &p.address {
                    None => {
                        self.error(p.name.span(), format!("router port {rname}/{pname} needs an address"));
                        Vec::new()
                    }
                    Some(a) => {
                        let list: Vec<&str> = match a.get_ref() {
                            Addresses::One(s) => vec![s.as_str()],
                            Addresses::Many(v) => v.iter().map(String::as_str).collect(),
                        };
                        list.into_iter().filter_map(|s| self.net_str(s, a.span(), "address")).collect()
                    }
                };
                let mac = match &p.mac {
                    None => Some(default_mac(ri, pi)),
                    Some(m) => self.mac(m),
                };
                let id = b.add_router_port(rid, uuid(), mac.unwrap_or(EthernetAddress([2, 0, 0, 0, 0, 0])), &nets);
                self.plug(&mut b, id, rname, p, &hosts, &mut bound, &mut keys);
                self.port_chains(&mut b, id, p, &chains);
                ports.insert(pname, PortInfo { id, nets, peer: p.peer.as_ref() });
            }
            devices.insert(rname, Device { kind: DeviceKind::Router(rid), ports });
        }
        for bridge in &raw.bridge {
            let br = bridge.get_ref();
            let bname = br.name.get_ref().as_str();
            if devices.contains_key(bname) {
                self.error(br.name.span(), format!("device {bname:?} is declared twice"));
                continue;
            }
            let bid = b.add_bridge(uuid());
            let (inbound, outbound) = (
                self.chain_ref(&chains, br.inbound_chain.as_ref()),
                self.chain_ref(&chains, br.outbound_chain.as_ref()),
            );
            b.set_bridge_chains(bid, inbound, outbound);
            let mut ports = BTreeMap::new();
            for port in &br.port {
                let p = port.get_ref();
                let pname = p.name.get_ref().as_str();
                if ports.contains_key(pname) {
                    self.error(p.name.span(), format!("bridge {bname:?} has two ports named {pname:?}"));
                    continue;
                }
                if let Some(a) = &p.address {
                    self.error(a.span(), "a bridge port has no address (give it to the router port it links to)");
                }
                if let Some(m) = &p.mac {
                    self.error(m.span(), "a bridge port has no MAC of its own");
                }
                let id = b.add_bridge_port(bid, uuid());
                self.plug(&mut b, id, bname, p, &hosts, &mut bound, &mut keys);
                self.port_chains(&mut b, id, p, &chains);
                ports.insert(pname, PortInfo { id, nets: Vec::new(), peer: p.peer.as_ref() });
            }
            devices.insert(bname, Device { kind: DeviceKind::Bridge(bid), ports });
        }
        self.links(&mut b, &devices);
        for bridge in &raw.bridge {
            let br = bridge.get_ref();
            let Some(Device { kind: DeviceKind::Bridge(bid), ports }) = devices.get(br.name.get_ref().as_str()) else {
                continue;
            };
            for sm in &br.static_mac {
                let sm = sm.get_ref();
                let mac = self.mac(&sm.mac);
                let port = match ports.get(sm.port.get_ref().as_str()) {
                    Some(info) => Some(info.id),
                    None => {
                        self.error(
                            sm.port.span(),
                            format!("static_mac port {:?}: this bridge has no such port", sm.port.get_ref()),
                        );
                        None
                    }
                };
                if let (Some(mac), Some(port)) = (mac, port) {
                    b.add_static_mac(*bid, mac, port);
                }
            }
        }
        for router in &raw.router {
            let r = router.get_ref();
            let Some(Device { kind: DeviceKind::Router(rid), ports }) = devices.get(r.name.get_ref().as_str()) else {
                continue;
            };
            for route in &r.route {
                if let Some(route) = self.route(route.get_ref(), ports, &mut uuid) {
                    b.add_route(*rid, route);
                }
            }
        }
        let groups = self.groups(&mut b, raw, &devices, &mut uuid);
        for c in &raw.chain {
            let Some(&cid) = chains.get(c.get_ref().name.get_ref().as_str()) else { continue };
            for rule in &c.get_ref().rule {
                if let Some(rule) = self.rule(rule, &chains, &devices, &groups, &mut uuid) {
                    b.add_rule(cid, rule);
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

    /// The `[underlay]` table; its DPDK port is reserved in `bound` even if something else is wrong.
    fn underlay(&mut self, u: &RawUnderlay, bound: &mut BTreeMap<u16, ()>) -> Option<Underlay> {
        let dpdk_port = self.dpdk_port(&u.dpdk_port);
        if let Some(d) = dpdk_port {
            bound.insert(d, ());
        }
        let net = match self.net(&u.address, "underlay address") {
            Some(IpNet::V4(n)) => Some(n),
            Some(IpNet::V6(_)) => {
                self.error(u.address.span(), "the underlay address must be IPv4");
                None
            }
            None => None,
        };
        let gateway = match &u.gateway {
            None => Some(None),
            Some(g) => match self.ip(g, "underlay gateway") {
                Some(IpAddr::V4(a)) if net.is_none_or(|n| n.contains(&a)) => Some(Some(a)),
                Some(IpAddr::V4(a)) => {
                    self.error(g.span(), format!("underlay gateway {a} is not on the underlay subnet"));
                    None
                }
                Some(IpAddr::V6(_)) => {
                    self.error(g.span(), "the underlay gateway must be IPv4");
                    None
                }
                None => None,
            },
        };
        let vxlan_port = match &u.vxlan_port {
            None => Some(4789),
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(v) if v != 0 => Some(v),
                _ => {
                    self.error(p.span(), format!("vxlan_port {} is out of range 1..=65535", p.get_ref()));
                    None
                }
            },
        };
        let (dpdk_port, net, gateway, vxlan_port) = (dpdk_port?, net?, gateway?, vxlan_port?);
        Some(Underlay { dpdk_port, address: net.addr(), prefix_len: net.prefix_len(), gateway, vxlan_port })
    }

    /// Binds a port as its `dpdk_port` or `host` + `tunnel_key` say (a `peer` is linked later).
    #[allow(clippy::too_many_arguments)]
    fn plug(
        &mut self,
        b: &mut SnapshotBuilder,
        id: PortId,
        device: &str,
        p: &RawPort,
        hosts: &BTreeMap<&str, HostId>,
        bound: &mut BTreeMap<u16, ()>,
        keys: &mut BTreeMap<i64, ()>,
    ) {
        let pname = p.name.get_ref();
        let given = [p.dpdk_port.is_some(), p.peer.is_some(), p.host.is_some()].iter().filter(|&&x| x).count();
        if given > 1 {
            self.error(
                p.name.span(),
                format!("port {device}/{pname} has more than one of dpdk_port, peer, host; give one"),
            );
            return;
        }
        if p.host.is_none() {
            if let Some(k) = &p.tunnel_key {
                self.error(k.span(), "tunnel_key goes with host (a port bound on a remote host)");
            }
        }
        if let Some(d) = &p.dpdk_port {
            if let Some(dpdk) = self.dpdk_port(d) {
                if bound.insert(dpdk, ()).is_some() {
                    self.error(d.span(), format!("DPDK port {:?} is bound twice (or is the underlay's)", d.get_ref()));
                } else {
                    b.bind_local(id, dpdk);
                }
            }
        }
        if let Some(h) = &p.host {
            let host = match hosts.get(h.get_ref().as_str()) {
                Some(&host) => Some(host),
                None => {
                    self.error(h.span(), format!("no [[host]] named {:?}", h.get_ref()));
                    None
                }
            };
            let key = match &p.tunnel_key {
                None => {
                    self.error(h.span(), format!("port {device}/{pname} is bound on a host but has no tunnel_key"));
                    None
                }
                Some(k) => match u32::try_from(*k.get_ref()) {
                    Ok(v) if v <= 0x00ff_ffff => {
                        if keys.insert(*k.get_ref(), ()).is_some() {
                            self.error(k.span(), format!("tunnel_key {v:#x} is used twice"));
                            None
                        } else {
                            Some(v)
                        }
                    }
                    _ => {
                        self.error(
                            k.span(),
                            format!("tunnel_key {} is out of range 0..=0xffffff (24 bits)", k.get_ref()),
                        );
                        None
                    }
                },
            };
            if let (Some(host), Some(key)) = (host, key) {
                b.bind_remote(id, host, key);
            }
        }
    }

    fn port_chains(&mut self, b: &mut SnapshotBuilder, id: PortId, p: &RawPort, chains: &BTreeMap<&str, ChainId>) {
        let inbound = self.chain_ref(chains, p.inbound_chain.as_ref());
        let outbound = self.chain_ref(chains, p.outbound_chain.as_ref());
        if inbound.is_some() || outbound.is_some() {
            b.set_port_chains(id, inbound, outbound);
        }
    }

    /// Links: each pair once; a one-sided peer is enough. Bridge-bridge links are refused.
    fn links(&mut self, b: &mut SnapshotBuilder, devices: &BTreeMap<&str, Device<'_>>) {
        let mut linked: BTreeSet<(PortId, PortId)> = BTreeSet::new();
        for (dname, dev) in devices {
            for (pname, info) in &dev.ports {
                let Some(peer) = info.peer else { continue };
                let Some((other_dev, other)) = self.port_ref(devices, peer) else { continue };
                if other.id == info.id {
                    self.error(peer.span(), format!("port {dname}/{pname} is its own peer"));
                    continue;
                }
                if matches!((dev.kind, other_dev.kind), (DeviceKind::Bridge(_), DeviceKind::Bridge(_))) {
                    self.error(peer.span(), "two bridge ports cannot be linked (link a bridge to a router)");
                    continue;
                }
                if let Some(back) = other.peer {
                    if back.get_ref() != &format!("{dname}/{pname}") {
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
    }

    /// `"DEVICE/PORT"`.
    fn port_ref<'d, 'r>(
        &mut self,
        devices: &'d BTreeMap<&str, Device<'r>>,
        s: &Spanned<String>,
    ) -> Option<(&'d Device<'r>, &'d PortInfo<'r>)> {
        let Some((d, p)) = s.get_ref().split_once('/') else {
            self.error(s.span(), format!("{:?} is not \"DEVICE/PORT\"", s.get_ref()));
            return None;
        };
        let found = devices.get(d).and_then(|dev| dev.ports.get(p).map(|info| (dev, info)));
        if found.is_none() {
            self.error(s.span(), format!("port {:?}: no such router or bridge port", s.get_ref()));
        }
        found
    }

    /// Port groups (members by `"DEVICE/PORT"`) and IP address groups.
    fn groups<'r>(
        &mut self,
        b: &mut SnapshotBuilder,
        raw: &'r RawFile,
        devices: &BTreeMap<&str, Device<'_>>,
        uuid: &mut impl FnMut() -> Uuid,
    ) -> Groups<'r> {
        let mut groups = Groups::default();
        for g in &raw.port_group {
            let g = g.get_ref();
            let name = g.name.get_ref().as_str();
            if groups.ports.contains_key(name) {
                self.error(g.name.span(), format!("port group {name:?} is declared twice"));
                continue;
            }
            let id = b.add_port_group(uuid(), g.stateful);
            for m in g.members.get_ref() {
                if let Some((_, info)) = self.port_ref(devices, &Spanned::new(g.members.span(), m.clone())) {
                    b.add_port_group_member(id, info.id);
                }
            }
            groups.ports.insert(name, id);
        }
        for g in &raw.ip_addr_group {
            let g = g.get_ref();
            let name = g.name.get_ref().as_str();
            if groups.addrs.contains_key(name) {
                self.error(g.name.span(), format!("IP address group {name:?} is declared twice"));
                continue;
            }
            let id = b.add_ip_addr_group(uuid());
            for a in g.addresses.get_ref() {
                match a.parse::<IpAddr>() {
                    Ok(addr) => b.add_ip_addr_group_address(id, addr),
                    Err(_) => self.error(g.addresses.span(), format!("{a:?} is not an IP address")),
                }
            }
            groups.addrs.insert(name, id);
        }
        groups
    }

    fn group_ref<T: Copy>(&mut self, map: &BTreeMap<&str, T>, v: &Spanned<String>, what: &str) -> Option<T> {
        let found = map.get(v.get_ref().as_str()).copied();
        if found.is_none() {
            self.error(v.span(), format!("no [[{what}]] named {:?}", v.get_ref()));
        }
        found
    }

    fn rule(
        &mut self,
        rule: &Spanned<RawRule>,
        chains: &BTreeMap<&str, ChainId>,
        devices: &BTreeMap<&str, Device<'_>>,
        groups: &Groups<'_>,
        uuid: &mut impl FnMut() -> Uuid,
    ) -> Option<Rule> {
        let r = rule.get_ref();
        let mut ok = true;
        let kind = match r.action.get_ref().as_str() {
            "accept" => Some(RuleKind::Accept),
            "drop" => Some(RuleKind::Drop),
            "reject" => Some(RuleKind::Reject),
            "continue" => Some(RuleKind::Continue),
            "return" => Some(RuleKind::Return),
            "jump" => match &r.jump_to {
                Some(t) => self.chain_ref(chains, Some(t)).map(RuleKind::Jump),
                None => {
                    self.error(r.action.span(), "a jump rule needs jump_to = \"CHAIN\"");
                    None
                }
            },
            other => {
                self.error(
                    r.action.span(),
                    format!("action {other:?} is not one of accept, drop, reject, continue, return, jump (NAT comes with the NAT stage)"),
                );
                None
            }
        };
        if r.jump_to.is_some() && r.action.get_ref() != "jump" {
            self.error(r.action.span(), "jump_to goes with action = \"jump\"");
            ok = false;
        }
        let inverted: BTreeSet<&str> = r.not.iter().map(|n| n.get_ref().as_str()).collect();
        const FIELDS: [&str; 15] = [
            "port_group",
            "ip_addr_group_src",
            "ip_addr_group_dst",
            "traversed_device",
            "hw_src",
            "hw_dst",
            "ethertype",
            "in_ports",
            "out_ports",
            "tos",
            "proto",
            "src",
            "dst",
            "src_port",
            "dst_port",
        ];
        for n in &r.not {
            if !FIELDS.contains(&n.get_ref().as_str()) {
                self.error(n.span(), format!("not: {:?} is not one of {}", n.get_ref(), FIELDS.join(", ")));
                ok = false;
            }
        }
        let mut c = Condition::default();
        if let Some(m) = &r.hw_src {
            c.hw_src = self.mac_any(m).map(|m| field(&inverted, "hw_src", MacMatch::exact(m)));
            ok &= c.hw_src.is_some();
        }
        if let Some(m) = &r.hw_dst {
            c.hw_dst = self.mac_any(m).map(|m| field(&inverted, "hw_dst", MacMatch::exact(m)));
            ok &= c.hw_dst.is_some();
        }
        if let Some(e) = &r.ethertype {
            c.ethertype = self.number::<u16>(e, "ethertype").map(|v| field(&inverted, "ethertype", v));
            ok &= c.ethertype.is_some();
        }
        if let Some(t) = &r.tos {
            c.tos = self.number::<u8>(t, "tos").map(|v| field(&inverted, "tos", v));
            ok &= c.tos.is_some();
        }
        if let Some(p) = &r.proto {
            let v = match p.get_ref() {
                ProtoSpec::Number(n) => u8::try_from(*n).ok(),
                ProtoSpec::Name(s) => match s.as_str() {
                    "icmp" => Some(1),
                    "tcp" => Some(6),
                    "udp" => Some(17),
                    "gre" => Some(47),
                    "icmpv6" => Some(58),
                    _ => None,
                },
            };
            if v.is_none() {
                self.error(p.span(), "proto is 0..=255 or one of icmp, tcp, udp, gre, icmpv6");
            }
            c.proto = v.map(|v| field(&inverted, "proto", v));
            ok &= c.proto.is_some();
        }
        for (raw, slot, name) in [(&r.src, &mut c.src, "src"), (&r.dst, &mut c.dst, "dst")] {
            if let Some(n) = raw {
                *slot = self.net(n, name).map(|n| field(&inverted, name, n.trunc()));
                ok &= slot.is_some();
            }
        }
        for (raw, slot, name) in
            [(&r.src_port, &mut c.src_port, "src_port"), (&r.dst_port, &mut c.dst_port, "dst_port")]
        {
            if let Some(p) = raw {
                *slot = self.port_range(p, name).map(|v| field(&inverted, name, v));
                ok &= slot.is_some();
            }
        }
        for (raw, slot, name) in
            [(&r.in_ports, &mut c.in_ports, "in_ports"), (&r.out_ports, &mut c.out_ports, "out_ports")]
        {
            if let Some(list) = raw {
                let mut ids = Vec::new();
                for s in list.get_ref() {
                    let spanned = Spanned::new(list.span(), s.clone());
                    match self.port_ref(devices, &spanned) {
                        Some((_, info)) => ids.push(info.id),
                        None => ok = false,
                    }
                }
                *slot = Some(field(&inverted, name, ids.into_boxed_slice()));
            }
        }
        if let Some(f) = &r.fragment_policy {
            c.fragment_policy = match f.get_ref().as_str() {
                "any" => Some(FragmentPolicy::Any),
                "header" => Some(FragmentPolicy::Header),
                "nonheader" => Some(FragmentPolicy::NonHeader),
                "unfragmented" => Some(FragmentPolicy::Unfragmented),
                other => {
                    self.error(
                        f.span(),
                        format!("fragment_policy {other:?} is not one of any, header, nonheader, unfragmented"),
                    );
                    ok = false;
                    None
                }
            };
        }
        if let Some(g) = &r.port_group {
            c.port_group = self.group_ref(&groups.ports, g, "port_group").map(|v| field(&inverted, "port_group", v));
            ok &= c.port_group.is_some();
        }
        for (raw, slot, name) in [
            (&r.ip_addr_group_src, &mut c.ip_addr_group_src, "ip_addr_group_src"),
            (&r.ip_addr_group_dst, &mut c.ip_addr_group_dst, "ip_addr_group_dst"),
        ] {
            if let Some(g) = raw {
                *slot = self.group_ref(&groups.addrs, g, "ip_addr_group").map(|v| field(&inverted, name, v));
                ok &= slot.is_some();
            }
        }
        if let Some(d) = &r.traversed_device {
            let id = match devices.get(d.get_ref().as_str()).map(|dev| dev.kind) {
                Some(DeviceKind::Router(r)) => Some(DeviceId::Router(r)),
                Some(DeviceKind::Bridge(b)) => Some(DeviceId::Bridge(b)),
                None => {
                    self.error(d.span(), format!("traversed_device {:?}: no such router or bridge", d.get_ref()));
                    None
                }
            };
            c.traversed_device = id.map(|v| field(&inverted, "traversed_device", v));
            ok &= c.traversed_device.is_some();
        }
        if let Some(f) = &r.flow {
            c.flow = match f.get_ref().as_str() {
                "forward" => Some(FlowDirection::Forward),
                "return" => Some(FlowDirection::Return),
                other => {
                    self.error(f.span(), format!("flow {other:?} is not one of forward, return"));
                    ok = false;
                    None
                }
            };
        }
        let kind = kind?;
        if !ok {
            return None;
        }
        match Rule::new(uuid(), c, kind) {
            Ok(rule) => Some(rule),
            Err(e) => {
                self.error(rule.span(), format!("rule: {e}"));
                None
            }
        }
    }

    /// A MAC in a rule (any unicast or multicast address).
    fn mac_any(&mut self, v: &Spanned<String>) -> Option<EthernetAddress> {
        let mac = parse_mac(v.get_ref());
        if mac.is_none() {
            self.error(v.span(), format!("{:?} is not a MAC such as \"02:00:00:00:00:01\"", v.get_ref()));
        }
        mac
    }

    fn number<T: TryFrom<i64>>(&mut self, v: &Spanned<i64>, what: &str) -> Option<T> {
        let n = T::try_from(*v.get_ref()).ok();
        if n.is_none() {
            self.error(v.span(), format!("{what} {} is out of range", v.get_ref()));
        }
        n
    }

    fn port_range(&mut self, v: &Spanned<PortSpec>, what: &str) -> Option<PortRange> {
        let range = match v.get_ref() {
            PortSpec::One(n) => u16::try_from(*n).ok().map(PortRange::single),
            PortSpec::Range(s) => s.split_once('-').and_then(|(a, b)| {
                let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
                (a <= b).then(|| PortRange::new(a, b))
            }),
        };
        if range.is_none() {
            self.error(v.span(), format!("{what} is a port 0..=65535 or a range \"FIRST-LAST\""));
        }
        range
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
                if let Some(g) = gateway {
                    let same_family: Vec<String> = info
                        .nets
                        .iter()
                        .filter(|n| n.addr().is_ipv4() == g.is_ipv4())
                        .map(|n| n.trunc().to_string())
                        .collect();
                    if !info.nets.iter().any(|n| n.contains(&g)) && !info.nets.is_empty() {
                        let at = r.gateway.as_ref().map_or(r.dst.span(), |g| g.span());
                        let subnets = if same_family.is_empty() {
                            "none of its family".to_string()
                        } else {
                            same_family.join(", ")
                        };
                        self.error(at, format!("gateway {g} is not on the port's subnet {subnets}"));
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

/// The condition field `name` with `value`, inverted when the rule's `not` lists it.
fn field<T>(inverted: &BTreeSet<&str>, name: &str, value: T) -> Field<T> {
    if inverted.contains(name) {
        Field::not(value)
    } else {
        Field::is(value)
    }
}

/// `02:6d:67:RR:PP:01` for port `PP` of router `RR` (both 0-based, file order).
pub(crate) fn default_mac(router: usize, port: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x6d, 0x67, router as u8, port as u8, 0x01])
}

pub(crate) fn parse_mac(s: &str) -> Option<EthernetAddress> {
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
    use midogw::flowtable::topology::{Binding, PortLink};

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
            "18:8: port \"nowhere/x\": no such router or bridge port",
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
        assert!(got.iter().any(|p| p.contains("\"up0\" is bound twice")), "{got:?}");
        assert!(got.iter().any(|p| p.contains("r/c has more than one of dpdk_port, peer, host")), "{got:?}");
        assert!(got.iter().any(|p| p.contains("r/d is its own peer")), "{got:?}");
    }

    #[test]
    fn the_example_file_builds_the_gateway_topology() {
        let text = include_str!("topology.gateway.example.toml");
        let ports = vec![("uplink0".to_string(), 0), ("underlay0".to_string(), 1)];
        let snap = parse("example.toml", text, &ports, 1).unwrap_or_else(|p| panic!("{p}"));
        assert_eq!((snap.routers().len(), snap.bridges().len(), snap.hosts().len()), (2, 1, 2));
        let u = snap.underlay().expect("underlay");
        assert_eq!((u.dpdk_port, u.address, u.prefix_len, u.vxlan_port), (1, "192.168.7.1".parse().unwrap(), 24, 4789));
        assert_eq!(u.gateway, None);
        let vm1 = snap.port_by_tunnel_key(0x101).expect("vm1");
        let vm2 = snap.port_by_tunnel_key(0x102).expect("vm2");
        assert!(matches!(
            snap.port(vm1).link,
            PortLink::Exterior(Binding::Remote { host: HostId(0), tunnel_key: 0x101 })
        ));
        assert!(matches!(snap.port(vm2).link, PortLink::Exterior(Binding::Remote { host: HostId(1), .. })));
        assert_eq!(snap.host(HostId(0)).encap, Encap::Vxlan);
        let up = snap.port_by_dpdk_port(0).expect("uplink");
        assert_eq!(snap.port(up).as_router_port().unwrap().addresses.len(), 2);
        // tenant/net is linked to the bridge's "router" port.
        let bridge = &snap.bridges()[0];
        let linked = bridge.ports.iter().filter(|&&p| matches!(snap.port(p).link, PortLink::Peer(_))).count();
        assert_eq!(linked, 1);
        assert!(snap.routers()[1].infilter.is_some());
        assert_eq!(snap.rules().len(), 2);
    }

    const BRIDGED: &str = r#"
[underlay]
dpdk_port = "up1"
address = "192.168.7.1/24"
gateway = "192.168.7.254"
vxlan_port = 8472

[[host]]
name = "h1"
tunnel_address = "192.168.7.11"
encap = "gre"

[[chain]]
name = "c"

[[chain.rule]]
action = "jump"
jump_to = "d"
hw_src = "02:00:00:00:00:09"
not = ["hw_src"]

[[chain]]
name = "d"

[[chain.rule]]
action = "reject"
src = "10.0.0.0/8"
src_port = "1000-2000"
proto = 17
fragment_policy = "header"
out_ports = ["b/p1"]

[[bridge]]
name = "b"
inbound_chain = "c"

[[bridge.port]]
name = "p1"
dpdk_port = "up0"
outbound_chain = "d"

[[bridge.port]]
name = "p2"
host = "h1"
tunnel_key = 7

[[bridge.static_mac]]
mac = "02:00:00:00:00:01"
port = "p1"
"#;

    #[test]
    fn bridges_chains_hosts_and_the_underlay_load() {
        let snap = parse("t.toml", BRIDGED, &ports(), 1).unwrap_or_else(|p| panic!("{p}"));
        let u = snap.underlay().unwrap();
        assert_eq!((u.vxlan_port, u.gateway), (8472, Some("192.168.7.254".parse().unwrap())));
        assert_eq!(snap.host(HostId(0)).encap, Encap::Gre);
        let b = &snap.bridges()[0];
        assert_eq!(b.static_mac(EthernetAddress([2, 0, 0, 0, 0, 1])), snap.port_by_dpdk_port(0));
        assert!(b.inbound_chain.is_some());
        // Rules in chain order: c's jump, then d's reject.
        let (jump, reject) = (&snap.rules()[0], &snap.rules()[1]);
        assert!(matches!(jump.kind, RuleKind::Jump(_)));
        assert!(jump.condition.hw_src.as_ref().unwrap().inverted);
        assert_eq!(reject.kind, RuleKind::Reject);
        assert_eq!(reject.condition.src_port.as_ref().unwrap().value, PortRange::new(1000, 2000));
        assert_eq!(reject.condition.proto.as_ref().unwrap().value, 17);
        assert_eq!(reject.fragment_policy, FragmentPolicy::Header);
    }

    #[test]
    fn bridge_host_underlay_and_rule_problems_have_locations() {
        let text = r#"
[underlay]
dpdk_port = "up0"
address = "2001:db8::1/64"
vxlan_port = 0

[[host]]
name = "h1"
tunnel_address = "192.168.7.11"
encap = "ipip"

[[chain]]
name = "c"

[[chain.rule]]
action = "masquerade"

[[chain.rule]]
action = "drop"
dst_port = "9-1"
not = ["colour"]
in_ports = ["b/zz"]

[[bridge]]
name = "b"
inbound_chain = "nope"

[[bridge.port]]
name = "p1"
dpdk_port = "up0"
address = "10.0.0.1/24"

[[bridge.port]]
name = "p2"
host = "h9"
tunnel_key = 16777216

[[bridge.port]]
name = "p3"
peer = "b/p1"

[[bridge.static_mac]]
mac = "ff:ff:ff:ff:ff:ff"
port = "p7"
"#;
        let got = problems(text);
        let want = [
            "4:11: the underlay address must be IPv4",
            "5:14: vxlan_port 0 is out of range",
            "10:9: encap \"ipip\" is not one of vxlan, gre",
            "16:10: action \"masquerade\" is not one of",
            "20:12: dst_port is a port 0..=65535 or a range",
            "21:8: not: \"colour\" is not one of",
            "22:12: port \"b/zz\": no such router or bridge port",
            "26:17: no [[chain]] named \"nope\"",
            "30:13: DPDK port \"up0\" is bound twice",
            "31:11: a bridge port has no address",
            "35:8: no [[host]] named \"h9\"",
            "36:14: tunnel_key 16777216 is out of range",
            "40:8: two bridge ports cannot be linked",
            "43:7: mac \"ff:ff:ff:ff:ff:ff\" is not a unicast MAC",
            "44:8: static_mac port \"p7\": this bridge has no such port",
        ];
        for w in want {
            assert!(got.iter().any(|g| g.starts_with(w)), "missing {w:?} in {got:#?}");
        }
    }

    #[test]
    fn groups_and_the_remaining_conditions_load() {
        let text = format!(
            "{BRIDGED}{}",
            r#"
[[port_group]]
name = "pg"
stateful = true
members = ["b/p1", "b/p2"]

[[ip_addr_group]]
name = "ag"
addresses = ["10.0.0.5", "2001:db8::5"]

[[chain]]
name = "e"

[[chain.rule]]
action = "accept"
port_group = "pg"
ip_addr_group_src = "ag"
ip_addr_group_dst = "ag"
traversed_device = "b"
flow = "return"
not = ["ip_addr_group_dst"]
"#
        );
        let snap = parse("t.toml", &text, &ports(), 1).unwrap_or_else(|p| panic!("{p}"));
        let g = &snap.port_groups()[0];
        assert!(g.stateful);
        assert_eq!(g.members.len(), 2);
        assert!(snap.ip_addr_groups()[0].contains("2001:db8::5".parse().unwrap()));
        let rule = snap.rules().last().unwrap();
        let c = &rule.condition;
        assert_eq!(c.port_group.as_ref().unwrap().value, PortGroupId(0));
        assert!(!c.ip_addr_group_src.as_ref().unwrap().inverted);
        assert!(c.ip_addr_group_dst.as_ref().unwrap().inverted);
        assert_eq!(c.traversed_device.as_ref().unwrap().value, DeviceId::Bridge(BridgeId(0)));
        assert_eq!(c.flow, Some(FlowDirection::Return));

        let bad = format!(
            "{BRIDGED}{}",
            r#"
[[port_group]]
name = "pg"
members = ["b/p9"]

[[ip_addr_group]]
name = "ag"
addresses = ["10.0.0.500"]

[[chain]]
name = "e"

[[chain.rule]]
action = "accept"
port_group = "nope"
traversed_device = "x"
flow = "sideways"
"#
        );
        let got = problems(&bad);
        for w in [
            "port \"b/p9\": no such router or bridge port",
            "\"10.0.0.500\" is not an IP address",
            "no [[port_group]] named \"nope\"",
            "traversed_device \"x\": no such router or bridge",
            "flow \"sideways\" is not one of forward, return",
        ] {
            assert!(got.iter().any(|g| g.contains(w)), "missing {w:?} in {got:#?}");
        }
    }

    #[test]
    fn syntax_errors_and_unknown_keys_have_locations() {
        let got = problems("[[router]]\nname = \"r\"\ncolour = \"red\"\n");
        assert!(got[0].starts_with("3:1: unknown field `colour`"), "{got:?}");
    }
}
