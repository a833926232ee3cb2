//! What Open vSwitch is told to do: bridges, ports and OpenFlow rules, as plain data that
//! renders to `ovs-vsctl` arguments, `ovs-ofctl add-flows` text and `ovs-appctl` commands. Nothing
//! here starts a process, so every command is unit-tested as text.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::packet::Encap;
use crate::topology::{GatewayTopology, TunnelSide, COMPUTE_HOST_MAC, DPDK_PORT_NAMES, GATEWAY_UNDERLAY_MAC};
use crate::traffic::{host, Direction};

/// The bridge of the gateway job (both memif ports on it).
pub const GATEWAY_BRIDGE: &str = "br-gw";
/// The tunnel job's overlay bridge: the uplink and the tunnel port.
pub const OVERLAY_BRIDGE: &str = "br-int";
/// The tunnel job's underlay bridge: the underlay memif port and the underlay address.
pub const UNDERLAY_BRIDGE: &str = "br-phy";
/// The tunnel port's name on [`OVERLAY_BRIDGE`].
pub const TUNNEL_PORT: &str = "tun0";

/// Priority of the routing rules; with `fail_mode=secure` and no other rule, anything else is
/// dropped, as the router drops what it has no route for.
const ROUTE_PRIORITY: u16 = 100;

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Everything Open vSwitch is configured with for one device under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsJob {
    /// Bridges, all on the userspace (`netdev`) datapath.
    pub bridges: Vec<Bridge>,
    /// Static neighbours of native tunnelling (route to the address over a bridge, and its MAC).
    pub neighbours: Vec<Neighbour>,
}

/// One bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    /// Its name (also the name of its internal port).
    pub name: String,
    /// The bridge's own MAC (`other_config:hwaddr`): the underlay bridge answers as the gateway.
    pub hwaddr: Option<[u8; 6]>,
    /// An address on the bridge's internal port, set inside Open vSwitch's private network
    /// namespace: the source address of native tunnels and where decapsulation terminates.
    pub address: Option<Ipv4Net>,
    /// Its ports, numbered (`ofport_request`) so rules can name them before they exist.
    pub ports: Vec<BridgePort>,
    /// OpenFlow rules, `ovs-ofctl add-flows` syntax, one per entry.
    pub flows: Vec<String>,
}

/// A port of a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePort {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u16,
    /// What it is.
    pub kind: PortKind,
}

/// The kinds of port the jobs use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortKind {
    /// A DPDK device (`type=dpdk`, `options:dpdk-devargs`), one receive queue.
    Dpdk {
        /// Its devargs (the `net_memif` server devargs every device under test gets).
        devargs: String,
        /// `mtu_request`.
        mtu: u16,
    },
    /// A native tunnel port.
    Tunnel {
        /// VXLAN or GRE.
        kind: TunnelKind,
        /// `options:local_ip`.
        local_ip: Ipv4Addr,
        /// `options:remote_ip`: fixed, or `None` for `flow` (set by the rule, `tun_dst`).
        remote_ip: Option<Ipv4Addr>,
    },
}

/// Encapsulations of the tunnel job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    /// VXLAN, UDP port 4789 (RFC 7348).
    Vxlan,
    /// GRE with a key, carrying Ethernet (RFC 2784/2890, transparent Ethernet bridging).
    Gre,
}

impl TunnelKind {
    /// The Interface `type`.
    pub fn ovs_type(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Gre => "gre",
        }
    }
}

/// A static next hop for native tunnelling: `ovs/route/add IP/32 BRIDGE` and
/// `tnl/arp/set BRIDGE IP MAC`, so no ARP exchange is needed before the first packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The bridge the address is reached through.
    pub bridge: String,
    /// The address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
}

impl OvsJob {
    /// `ovs-vsctl` arguments (one transaction) creating every bridge with its non-DPDK ports:
    /// `fail_mode=secure` so no default NORMAL rule ever forwards anything.
    pub fn bridge_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        for b in &self.bridges {
            a.extend(["--", "add-br", &b.name, "--", "set", "bridge", &b.name].map(String::from));
            a.extend(["datapath_type=netdev", "fail_mode=secure"].map(String::from));
            if let Some(mac) = b.hwaddr {
                a.push(format!("other_config:hwaddr={}", mac_text(mac)));
            }
            for p in &b.ports {
                let PortKind::Tunnel { kind, local_ip, remote_ip } = &p.kind else { continue };
                a.extend(["--", "add-port", &b.name, &p.name, "--", "set", "Interface", &p.name].map(String::from));
                a.push(format!("type={}", kind.ovs_type()));
                a.push(format!("options:local_ip={local_ip}"));
                a.push(format!("options:remote_ip={}", remote_ip.map_or("flow".into(), |ip| ip.to_string())));
                a.push("options:key=flow".into());
                a.push(format!("ofport_request={}", p.ofport));
            }
        }
        a.remove(0);
        a
    }

    /// `ovs-vsctl` arguments (one transaction) adding every DPDK port: all devices are probed in
    /// one reconfiguration, before the generator connects.
    pub fn dpdk_port_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        for b in &self.bridges {
            for p in &b.ports {
                let PortKind::Dpdk { devargs, mtu } = &p.kind else { continue };
                a.extend(["--", "add-port", &b.name, &p.name, "--", "set", "Interface", &p.name].map(String::from));
                a.push("type=dpdk".into());
                a.push(format!("options:dpdk-devargs={devargs}"));
                a.push("options:n_rxq=1".into());
                a.push(format!("mtu_request={mtu}"));
                a.push(format!("ofport_request={}", p.ofport));
            }
        }
        if !a.is_empty() {
            a.remove(0);
        }
        a
    }

    /// Every DPDK port: (name, requested OpenFlow number).
    pub fn dpdk_ports(&self) -> Vec<(String, u16)> {
        self.bridges
            .iter()
            .flat_map(|b| &b.ports)
            .filter(|p| matches!(p.kind, PortKind::Dpdk { .. }))
            .map(|p| (p.name.clone(), p.ofport))
            .collect()
    }

    /// Commands run in Open vSwitch's network namespace: the bridges' addresses, IPv6 off on
    /// those ports (the kernel would send router solicitations and MLD reports out of them).
    pub fn address_commands(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for b in &self.bridges {
            if let Some(net) = b.address {
                let no_v6 = format!("net.ipv6.conf.{}.disable_ipv6=1", b.name);
                out.push(["sysctl", "-qw", &no_v6].map(String::from).to_vec());
                out.push(["ip", "addr", "add", &net.to_string(), "dev", &b.name].map(String::from).to_vec());
                out.push(["ip", "link", "set", &b.name, "up"].map(String::from).to_vec());
            }
        }
        out
    }

    /// `ovs-appctl` commands for the static neighbours.
    pub fn appctl_commands(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for n in &self.neighbours {
            out.push(vec!["ovs/route/add".into(), format!("{}/32", n.ip), n.bridge.clone()]);
            out.push(vec!["tnl/arp/set".into(), n.bridge.clone(), n.ip.to_string(), mac_text(n.mac)]);
        }
        out
    }
}

impl Bridge {
    /// The `ovs-ofctl add-flows` file.
    pub fn flow_text(&self) -> String {
        self.flows.iter().map(|f| format!("{f}\n")).collect()
    }
}

/// One routing rule: what the router does to a frame on a flow-cache hit, as one OpenFlow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Ingress OpenFlow port.
    pub in_port: u16,
    /// Only frames addressed to this MAC (the ingress router port's), as the router accepts.
    pub to_mac: Option<[u8; 6]>,
    /// Decapsulation: only this tunnel key.
    pub tun_id: Option<u32>,
    /// The route's destination prefix.
    pub dst: Ipv4Net,
    /// New source MAC: the egress router port's.
    pub src_mac: [u8; 6],
    /// New destination MAC: the next hop's.
    pub dst_mac: [u8; 6],
    /// One `dec_ttl` per router crossed.
    pub ttl_decrements: u8,
    /// Encapsulation: the key and, for `remote_ip=flow` ports, the remote address.
    pub set_tunnel: Option<(u32, Option<Ipv4Addr>)>,
    /// Egress OpenFlow port.
    pub out_port: u16,
}

impl RouteRule {
    /// The rule in `ovs-ofctl` syntax.
    pub fn flow(&self) -> String {
        let mut m = format!("priority={ROUTE_PRIORITY},in_port={}", self.in_port);
        if let Some(key) = self.tun_id {
            m += &format!(",tun_id={key:#x}");
        }
        m += ",ip";
        if let Some(mac) = self.to_mac {
            m += &format!(",dl_dst={}", mac_text(mac));
        }
        m += &format!(",nw_dst={}", self.dst.trunc());
        let mut a = format!("mod_dl_src:{},mod_dl_dst:{}", mac_text(self.src_mac), mac_text(self.dst_mac));
        for _ in 0..self.ttl_decrements {
            a += ",dec_ttl";
        }
        if let Some((key, remote)) = self.set_tunnel {
            a += &format!(",set_field:{key:#x}->tun_id");
            if let Some(ip) = remote {
                a += &format!(",set_field:{ip}->tun_dst");
            }
        }
        a += &format!(",output:{}", self.out_port);
        format!("{m},actions={a}")
    }
}

fn v4(net: IpNet, what: &str) -> Result<Ipv4Net> {
    match net {
        IpNet::V4(n) => Ok(n.trunc()),
        IpNet::V6(_) => Err(Error::Build(format!("ovs-dpdk peer: {what} is IPv6; the jobs route IPv4 only"))),
    }
}

/// The gateway scenarios' job: one bridge with both memif ports (`up0` = OpenFlow 1 on generator
/// port 0's link, `down0` = 2), and per direction one rule that routes like the topology's router
/// does on a flow-cache hit: frames to the ingress router port's MAC, IPv4 to the egress port's
/// connected prefix, get the egress port's MAC as source, the generator's host on that side as
/// destination (the next hop the router resolves by ARP; see [`host`]), one TTL decrement per
/// router crossed, and leave on the egress port. Everything else is dropped. Open vSwitch sends
/// no ARP (its next hops are static), so the generator's probes are routed at once.
pub fn gateway_job(topology: &GatewayTopology, devargs: &[String; 2], mtu: u16) -> Result<OvsJob> {
    let hosts = [host(Direction::Forward), host(Direction::Reverse)];
    let ports = [topology.router_port(DPDK_PORT_NAMES[0])?, topology.router_port(DPDK_PORT_NAMES[1])?];
    let mut flows = Vec::new();
    for (from, to) in [(0, 1), (1, 0)] {
        let dst = v4(ports[to].address, "the router port's address")?;
        let (host_mac, host_ip) = hosts[to];
        if !dst.contains(&host_ip) {
            return Err(Error::Build(format!(
                "ovs-dpdk peer: the generator's host {host_ip} is not in {dst}, the connected prefix of the router port on {}",
                DPDK_PORT_NAMES[to]
            )));
        }
        let rule = RouteRule {
            in_port: from as u16 + 1,
            to_mac: Some(ports[from].mac),
            tun_id: None,
            dst,
            src_mac: ports[to].mac,
            dst_mac: host_mac,
            ttl_decrements: topology.routers_between(DPDK_PORT_NAMES[from], DPDK_PORT_NAMES[to])?,
            set_tunnel: None,
            out_port: to as u16 + 1,
        };
        flows.push(rule.flow());
    }
    let ports = (0..2)
        .map(|i| BridgePort {
            name: DPDK_PORT_NAMES[i].into(),
            ofport: i as u16 + 1,
            kind: PortKind::Dpdk { devargs: devargs[i].clone(), mtu },
        })
        .collect();
    Ok(OvsJob {
        bridges: vec![Bridge { name: GATEWAY_BRIDGE.into(), hwaddr: None, address: None, ports, flows }],
        neighbours: vec![],
    })
}

/// The job for a tunnel topology (`side`, from [`GatewayTopology::tunnel`]): [`tunnel_job`] with
/// what the generator plays: its uplink host (forward direction) behind `up0`, the compute host
/// (the underlay MAC and address the runner gives it) and the VM behind the tunnel (reverse
/// direction) on `down0`, the gateway's underlay MAC the runner gives every device.
pub fn gateway_tunnel_job(
    topology: &GatewayTopology,
    side: &TunnelSide,
    devargs: &[String; 2],
    mtu: u16,
) -> Result<OvsJob> {
    let up = topology.router_port(DPDK_PORT_NAMES[0])?;
    let (uplink_host_mac, uplink_host_ip) = host(Direction::Forward);
    let (vm_mac, vm_ip) = host(Direction::Reverse);
    let prefix = v4(up.address, "the uplink router port's address")?;
    let overlay = v4(side.overlay, "the tunnelled router port's address")?;
    for (net, ip, what) in [(prefix, uplink_host_ip, "uplink"), (overlay, vm_ip, "tunnelled")] {
        if !net.contains(&ip) {
            return Err(Error::Build(format!(
                "ovs-dpdk peer: the generator's host {ip} is not in {net}, the connected prefix of the {what} router port"
            )));
        }
    }
    let uplink = Uplink { router_mac: up.mac, prefix, host_mac: uplink_host_mac };
    let tunnel = TunnelParams {
        kind: match side.encap {
            Encap::Vxlan => TunnelKind::Vxlan,
            Encap::Gre => TunnelKind::Gre,
        },
        underlay: side.underlay,
        underlay_mac: GATEWAY_UNDERLAY_MAC,
        remote_ip: side.host_address,
        remote_mac: COMPUTE_HOST_MAC,
        remote_from_flow: false,
        key: side.key,
        overlay,
        inner_router_mac: side.router_mac,
        inner_host_mac: vm_mac,
    };
    Ok(tunnel_job(&uplink, &tunnel, devargs, mtu))
}

/// The uplink side of a tunnel job (memif port 0): the router port there and the host behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uplink {
    /// The router port's MAC (frames from the uplink are addressed to it; decapsulated frames
    /// leave with it as source).
    pub router_mac: [u8; 6],
    /// Destinations behind the uplink (decapsulated traffic is routed there).
    pub prefix: Ipv4Net,
    /// The next hop's MAC on the uplink.
    pub host_mac: [u8; 6],
}

/// A tunnel to one remote host over the underlay (memif port 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelParams {
    /// VXLAN or GRE.
    pub kind: TunnelKind,
    /// This gateway's underlay address and prefix (on the underlay bridge).
    pub underlay: Ipv4Net,
    /// This gateway's underlay MAC.
    pub underlay_mac: [u8; 6],
    /// The remote host's underlay address (the outer destination).
    pub remote_ip: Ipv4Addr,
    /// The remote host's underlay MAC (a static neighbour: no ARP before the first packet).
    pub remote_mac: [u8; 6],
    /// `remote_ip=flow` on the port with `tun_dst` set by the rule (true), or fixed on the port.
    pub remote_from_flow: bool,
    /// The VNI (VXLAN) or GRE key, both directions.
    pub key: u32,
    /// Inner destinations reached through the tunnel.
    pub overlay: Ipv4Net,
    /// Inner source MAC of encapsulated frames (the router port towards the overlay), and the
    /// inner destination MAC decapsulated frames must carry.
    pub inner_router_mac: [u8; 6],
    /// Inner destination MAC of encapsulated frames (the remote endpoint's).
    pub inner_host_mac: [u8; 6],
}

/// The tunnel scenarios' job, Open vSwitch native tunnelling on the userspace datapath:
///
/// - [`UNDERLAY_BRIDGE`] holds the underlay memif port (`down0`, OpenFlow 1), has the underlay
///   MAC and address, and passes everything between that port and its internal port (the
///   datapath pops tunnel packets addressed to it and pushes the headers of outgoing ones), with
///   a static route and neighbour for the remote host;
/// - [`OVERLAY_BRIDGE`] holds the uplink (`up0`, OpenFlow 1) and the tunnel port ([`TUNNEL_PORT`],
///   OpenFlow 2, `key=flow`), with an encapsulation rule (uplink, to the router port's MAC, to the
///   overlay prefix: inner MACs rewritten, TTL decremented, key and remote set, out the tunnel)
///   and a decapsulation rule (from the tunnel with the key, to the uplink prefix: MACs
///   rewritten, TTL decremented, out the uplink).
pub fn tunnel_job(uplink: &Uplink, t: &TunnelParams, devargs: &[String; 2], mtu: u16) -> OvsJob {
    let encap = RouteRule {
        in_port: 1,
        to_mac: Some(uplink.router_mac),
        tun_id: None,
        dst: t.overlay.trunc(),
        src_mac: t.inner_router_mac,
        dst_mac: t.inner_host_mac,
        ttl_decrements: 1,
        set_tunnel: Some((t.key, t.remote_from_flow.then_some(t.remote_ip))),
        out_port: 2,
    };
    let decap = RouteRule {
        in_port: 2,
        to_mac: Some(t.inner_router_mac),
        tun_id: Some(t.key),
        dst: uplink.prefix.trunc(),
        src_mac: uplink.router_mac,
        dst_mac: uplink.host_mac,
        ttl_decrements: 1,
        set_tunnel: None,
        out_port: 1,
    };
    let overlay = Bridge {
        name: OVERLAY_BRIDGE.into(),
        hwaddr: None,
        address: None,
        ports: vec![
            BridgePort {
                name: DPDK_PORT_NAMES[0].into(),
                ofport: 1,
                kind: PortKind::Dpdk { devargs: devargs[0].clone(), mtu },
            },
            BridgePort {
                name: TUNNEL_PORT.into(),
                ofport: 2,
                kind: PortKind::Tunnel {
                    kind: t.kind,
                    local_ip: t.underlay.addr(),
                    remote_ip: (!t.remote_from_flow).then_some(t.remote_ip),
                },
            },
        ],
        flows: vec![encap.flow(), decap.flow()],
    };
    let underlay = Bridge {
        name: UNDERLAY_BRIDGE.into(),
        hwaddr: Some(t.underlay_mac),
        address: Some(t.underlay),
        ports: vec![BridgePort {
            name: DPDK_PORT_NAMES[1].into(),
            ofport: 1,
            // net_memif carries at most 1518-byte frames, so the underlay cannot be larger than
            // the uplink: the runner sizes `mtu` for the largest frame of either direction.
            kind: PortKind::Dpdk { devargs: devargs[1].clone(), mtu },
        }],
        flows: vec!["priority=10,in_port=1,actions=LOCAL".into(), "priority=10,in_port=LOCAL,actions=output:1".into()],
    };
    OvsJob {
        bridges: vec![overlay, underlay],
        neighbours: vec![Neighbour { bridge: UNDERLAY_BRIDGE.into(), ip: t.remote_ip, mac: t.remote_mac }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::resolve;

    fn devargs() -> [String; 2] {
        ["net_memif0,role=server,socket=/s,id=0".into(), "net_memif1,role=server,socket=/s,id=1".into()]
    }

    #[test]
    fn gateway_rules_route_like_the_one_router_topology() {
        let topo = GatewayTopology::load(&resolve("perf/topologies/gateway-one-router.toml")).unwrap();
        let job = gateway_job(&topo, &devargs(), 1500).unwrap();
        assert_eq!(job.bridges.len(), 1);
        assert_eq!(
            job.bridges[0].flows,
            [
                "priority=100,in_port=1,ip,dl_dst=02:00:00:00:10:01,nw_dst=198.19.0.0/16,\
                 actions=mod_dl_src:02:00:00:00:10:02,mod_dl_dst:02:00:00:00:00:02,dec_ttl,output:2",
                "priority=100,in_port=2,ip,dl_dst=02:00:00:00:10:02,nw_dst=198.18.0.0/16,\
                 actions=mod_dl_src:02:00:00:00:10:01,mod_dl_dst:02:00:00:00:00:01,dec_ttl,output:1",
            ]
        );
        assert_eq!(job.bridges[0].flow_text().lines().count(), 2);
        assert!(job.neighbours.is_empty() && job.address_commands().is_empty() && job.appctl_commands().is_empty());
    }

    #[test]
    fn the_edge_tenant_topology_decrements_the_ttl_twice() {
        let topo = GatewayTopology::load(&resolve("perf/topologies/gateway-edge-tenant.toml")).unwrap();
        let job = gateway_job(&topo, &devargs(), 1500).unwrap();
        for f in &job.bridges[0].flows {
            assert!(f.contains("dec_ttl,dec_ttl,output:"), "{f}");
            assert!(!f.contains("dec_ttl,dec_ttl,dec_ttl"), "{f}");
        }
        assert!(job.bridges[0].flows[0].contains("mod_dl_src:02:00:00:00:20:02"));
    }

    #[test]
    fn gateway_commands_are_one_transaction_each() {
        let topo = GatewayTopology::load(&resolve("perf/topologies/gateway-one-router.toml")).unwrap();
        let job = gateway_job(&topo, &devargs(), 1600).unwrap();
        assert_eq!(
            job.bridge_args().join(" "),
            "add-br br-gw -- set bridge br-gw datapath_type=netdev fail_mode=secure"
        );
        assert_eq!(
            job.dpdk_port_args().join(" "),
            "add-port br-gw up0 -- set Interface up0 type=dpdk options:dpdk-devargs=net_memif0,role=server,socket=/s,id=0 \
             options:n_rxq=1 mtu_request=1600 ofport_request=1 -- \
             add-port br-gw down0 -- set Interface down0 type=dpdk options:dpdk-devargs=net_memif1,role=server,socket=/s,id=1 \
             options:n_rxq=1 mtu_request=1600 ofport_request=2"
        );
        assert_eq!(job.dpdk_ports(), [("up0".to_string(), 1), ("down0".to_string(), 2)]);
    }

    #[test]
    fn a_host_outside_the_connected_prefix_is_refused() {
        let text =
            "[[router]]\nname = \"r\"\n[[router.port]]\nname = \"a\"\naddress = \"10.0.0.1/24\"\ndpdk_port = \"up0\"\n\
                    [[router.port]]\nname = \"b\"\naddress = \"10.0.1.1/24\"\ndpdk_port = \"down0\"\n";
        let topo = GatewayTopology::parse(text, std::path::Path::new("t.toml")).unwrap();
        let err = gateway_job(&topo, &devargs(), 1500).unwrap_err().to_string();
        assert!(err.contains("198.19.0.1") && err.contains("10.0.1.0/24"), "{err}");
    }

    fn tunnel(kind: TunnelKind, remote_from_flow: bool) -> TunnelParams {
        TunnelParams {
            kind,
            underlay: "192.0.2.1/24".parse().unwrap(),
            underlay_mac: [2, 0, 0, 0, 0x30, 1],
            remote_ip: "192.0.2.2".parse().unwrap(),
            remote_mac: [2, 0, 0, 0, 0x30, 2],
            remote_from_flow,
            key: 5001,
            overlay: "198.19.0.0/16".parse().unwrap(),
            inner_router_mac: [2, 0, 0, 0, 0x10, 2],
            inner_host_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    fn uplink() -> Uplink {
        Uplink {
            router_mac: [2, 0, 0, 0, 0x10, 1],
            prefix: "198.18.0.0/16".parse().unwrap(),
            host_mac: [2, 0, 0, 0, 0, 1],
        }
    }

    /// The tunnel topologies' jobs: the key, the host's address and the generator's MACs from the file.
    #[test]
    fn tunnel_topologies_get_their_tunnel() {
        for (file, kind, key, remote) in [
            ("perf/topologies/gateway-vxlan.toml", "vxlan", 4097, "192.0.2.11"),
            ("perf/topologies/gateway-gre.toml", "gre", 4098, "192.0.2.12"),
        ] {
            let topo = GatewayTopology::load(&resolve(file)).unwrap();
            let side = topo.tunnel().unwrap().unwrap();
            let job = gateway_tunnel_job(&topo, &side, &devargs(), 1500).unwrap();
            let args = job.bridge_args().join(" ");
            assert!(
                args.contains(&format!("type={kind} options:local_ip=192.0.2.1 options:remote_ip={remote}")),
                "{args}"
            );
            let flows = job.bridges[0].flows.join("\n");
            assert!(flows.contains(&format!("set_field:{key:#x}->tun_id")), "{flows}");
            assert!(flows.contains(&format!("tun_id={key:#x}")), "{flows}");
            assert!(flows.contains("nw_dst=198.19.0.0/16") && flows.contains("nw_dst=198.18.0.0/16"), "{flows}");
            assert_eq!(job.bridges[1].hwaddr, Some(GATEWAY_UNDERLAY_MAC));
        }
    }

    #[test]
    fn vxlan_job_sets_up_native_tunnelling() {
        let job = tunnel_job(&uplink(), &tunnel(TunnelKind::Vxlan, true), &devargs(), 1500);
        assert_eq!(
            job.bridge_args().join(" "),
            "add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure -- \
             add-port br-int tun0 -- set Interface tun0 type=vxlan options:local_ip=192.0.2.1 options:remote_ip=flow \
             options:key=flow ofport_request=2 -- \
             add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure other_config:hwaddr=02:00:00:00:30:01"
        );
        assert_eq!(
            job.bridges[0].flows,
            [
                "priority=100,in_port=1,ip,dl_dst=02:00:00:00:10:01,nw_dst=198.19.0.0/16,\
                 actions=mod_dl_src:02:00:00:00:10:02,mod_dl_dst:02:00:00:00:00:02,dec_ttl,\
                 set_field:0x1389->tun_id,set_field:192.0.2.2->tun_dst,output:2",
                "priority=100,in_port=2,tun_id=0x1389,ip,dl_dst=02:00:00:00:10:02,nw_dst=198.18.0.0/16,\
                 actions=mod_dl_src:02:00:00:00:10:01,mod_dl_dst:02:00:00:00:00:01,dec_ttl,output:1",
            ]
        );
        assert_eq!(
            job.bridges[1].flows,
            ["priority=10,in_port=1,actions=LOCAL", "priority=10,in_port=LOCAL,actions=output:1"]
        );
        assert_eq!(
            job.address_commands(),
            [
                vec!["sysctl", "-qw", "net.ipv6.conf.br-phy.disable_ipv6=1"],
                vec!["ip", "addr", "add", "192.0.2.1/24", "dev", "br-phy"],
                vec!["ip", "link", "set", "br-phy", "up"]
            ]
        );
        assert_eq!(
            job.appctl_commands(),
            [
                vec!["ovs/route/add", "192.0.2.2/32", "br-phy"],
                vec!["tnl/arp/set", "br-phy", "192.0.2.2", "02:00:00:00:30:02"]
            ]
        );
        assert_eq!(job.dpdk_ports(), [("up0".to_string(), 1), ("down0".to_string(), 1)]);
        assert!(job.dpdk_port_args().join(" ").contains("add-port br-phy down0"));
    }

    #[test]
    fn gre_job_with_a_fixed_remote() {
        let job = tunnel_job(&uplink(), &tunnel(TunnelKind::Gre, false), &devargs(), 1500);
        let args = job.bridge_args().join(" ");
        assert!(
            args.contains("type=gre options:local_ip=192.0.2.1 options:remote_ip=192.0.2.2 options:key=flow"),
            "{args}"
        );
        assert!(!job.bridges[0].flows[0].contains("tun_dst"), "the port fixes the remote");
        assert!(job.bridges[0].flows[0].contains("set_field:0x1389->tun_id,output:2"));
    }

    #[test]
    fn jobs_survive_json() {
        let job = tunnel_job(&uplink(), &tunnel(TunnelKind::Vxlan, true), &devargs(), 1500);
        let back: OvsJob = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }
}
