//! Named benchmark scenarios, read from a seeded TOML table (`perf/scenarios/scenarios.toml` is
//! built in; `--scenarios FILE` replaces it).

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::traffic::TrafficSpec;

/// The table compiled into the binary.
pub const BUILTIN: &str = include_str!("../scenarios/scenarios.toml");

/// What the device under test is set up to do. Each later pipeline issue adds a variant here,
/// with its appliance configuration and its reference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pipeline {
    /// Port pairs cross-connected (0<->1): what testpmd calls io forwarding.
    CrossConnect,
    /// The gateway pipeline (flow cache, topology simulation on a miss) over the scenario's
    /// `topology` file, both memif ports bound to router ports.
    Gateway,
}

impl Pipeline {
    /// The reference runs measured beside the appliance in the same invocation.
    pub fn references(self) -> &'static [Reference] {
        match self {
            Pipeline::CrossConnect | Pipeline::Gateway => &[Reference::TestpmdIo, Reference::TestpmdMacswap],
        }
    }

    /// The peer product doing the same job, if there is one: Open vSwitch's DPDK datapath for
    /// the gateway (and later tunnel) pipelines (NAT64 would bring Tayga).
    pub fn peer(self) -> Option<Reference> {
        match self {
            Pipeline::CrossConnect => None,
            Pipeline::Gateway => Some(Reference::OvsDpdk),
        }
    }
}

/// A reference forwarder run on the same devices as the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// `dpdk-testpmd --forward-mode=io`: the I/O ceiling every ratio is taken against.
    TestpmdIo,
    /// `dpdk-testpmd --forward-mode=macswap`: io plus one write per packet.
    TestpmdMacswap,
    /// Open vSwitch's DPDK datapath doing the pipeline's job (the peer; see `crate::ovs`).
    OvsDpdk,
}

impl Reference {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Reference::TestpmdIo => "testpmd-io",
            Reference::TestpmdMacswap => "testpmd-macswap",
            Reference::OvsDpdk => crate::ovs::PEER,
        }
    }
}

/// Which of the generator's ports send: both (the default), or one direction only, for
/// scenarios that measure one way through the gateway (VXLAN encap: only the uplink sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Directions {
    /// Port 0 sends the forward stream and port 1 the reverse one, at once.
    #[default]
    Both,
    /// Only port 0 sends (towards port 1).
    Forward,
    /// Only port 1 sends (towards port 0).
    Reverse,
}

impl Directions {
    /// Whether the stream sent on generator port `port` (0 forward, 1 reverse) runs.
    pub fn sends(self, port: usize) -> bool {
        match self {
            Directions::Both => port < 2,
            Directions::Forward => port == 0,
            Directions::Reverse => port == 1,
        }
    }

    /// How many streams run.
    pub fn streams(self) -> usize {
        match self {
            Directions::Both => 2,
            Directions::Forward | Directions::Reverse => 1,
        }
    }
}

/// One named scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name, used on the command line and in reports.
    pub name: String,
    /// Groups it belongs to; `midogw-perf run GROUP` runs all of a group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the device under test does.
    pub pipeline: Pipeline,
    /// One line for reports.
    pub description: String,
    /// Traffic sent on generator port 0 (and, mirrored, on port 1).
    pub traffic: TrafficSpec,
    /// Different traffic for the reverse direction (port 1 -> port 0).
    #[serde(default)]
    pub reverse: Option<TrafficSpec>,
    /// Which ports send: "both" (default), "forward" (port 0 only) or "reverse" (port 1 only).
    /// Rates, ratios and losses then count that one direction.
    #[serde(default)]
    pub directions: Directions,
    /// Offered load of the latency phase, in Mpps for the sending directions together.
    #[serde(default = "default_latency_rate")]
    pub latency_rate_mpps: f64,
    /// Smallest acceptable ratio to testpmd io.
    #[serde(default = "default_target")]
    pub target_ratio_io: f64,
    /// The topology file a `gateway` scenario runs (docs/topology.md), its ports bound to the
    /// `[[port]]` names `up0` (generator port 0) and `down0` (port 1). Relative paths are taken
    /// from the current directory, then from the repository root.
    #[serde(default)]
    pub topology: Option<String>,
    /// Largest acceptable instructions per packet (callgrind), reported met or not.
    #[serde(default)]
    pub target_instructions_per_packet: Option<f64>,
    /// Smallest acceptable new flows set up per second per worker core, in millions: for a
    /// scenario whose every frame is a new flow, the forwarding rate per core. Reported, not
    /// asserted.
    #[serde(default)]
    pub target_flow_setups_mpps_per_core: Option<f64>,
}

fn default_latency_rate() -> f64 {
    1.0
}

fn default_target() -> f64 {
    0.9
}

impl Scenario {
    /// Traffic of the reverse stream.
    pub fn reverse_traffic(&self) -> &TrafficSpec {
        self.reverse.as_ref().unwrap_or(&self.traffic)
    }

    /// The scenario's topology file, resolved ([`crate::topology::resolve`]).
    pub fn topology_path(&self) -> Option<std::path::PathBuf> {
        self.topology.as_deref().map(crate::topology::resolve)
    }

    /// The destination MACs of the forward and reverse streams: the router ports bound to the
    /// generator's ports for a gateway scenario, `None` (the far side's host) otherwise.
    /// In a tunnel topology port 1's MAC is the inner destination: the router port bound on the
    /// compute host.
    pub fn router_macs(&self) -> Result<Option<[[u8; 6]; 2]>, Error> {
        let Some(path) = self.topology_path() else { return Ok(None) };
        Ok(Some(crate::topology::GatewayTopology::load(&path)?.port_macs()?))
    }

    /// For a tunnel topology (port 1 is the underlay): the tunnel the generator's port 1 sends
    /// through as the compute host, to the gateway's underlay port at `gateway_mac`.
    pub fn tunnel(&self, gateway_mac: [u8; 6]) -> Result<Option<crate::packet::Tunnel>, Error> {
        let Some(path) = self.topology_path() else { return Ok(None) };
        Ok(crate::topology::GatewayTopology::load(&path)?.tunnel()?.map(|t| t.host_tunnel(gateway_mac)))
    }

    /// Whether the scenario's topology puts port 1 on the underlay (its traffic is tunnelled).
    pub fn is_tunnel(&self) -> Result<bool, Error> {
        Ok(self.tunnel([0; 6])?.is_some())
    }

    fn validate_pipeline(&self) -> Result<(), Error> {
        let bad = |reason: &str| Err(Error::Scenario { name: self.name.clone(), reason: reason.into() });
        match (self.pipeline, &self.topology) {
            (Pipeline::Gateway, None) => return bad("a gateway scenario needs topology = \"FILE\""),
            (Pipeline::CrossConnect, Some(_)) => return bad("topology is for gateway scenarios"),
            _ => {}
        }
        if self.pipeline == Pipeline::Gateway {
            // The generator answers ARP, not NDP; tunnels come from the topology's [underlay].
            for t in std::iter::once(&self.traffic).chain(&self.reverse) {
                if t.ipv6_share != 0.0 {
                    return bad("gateway traffic is IPv4 for now (the generator answers ARP, not NDP)");
                }
                if t.vxlan.is_some() {
                    return bad("gateway traffic takes its tunnel from the topology ([underlay] on down0), not vxlan");
                }
            }
        }
        if self.target_instructions_per_packet.is_some_and(|t| !(t > 0.0 && t.is_finite()))
            || self.target_flow_setups_mpps_per_core.is_some_and(|t| !(t > 0.0 && t.is_finite()))
        {
            return bad("targets must be > 0");
        }
        Ok(())
    }

    /// Largest frame either direction sends (FCS included).
    pub fn max_frame_size(&self) -> usize {
        self.traffic.frames.max().max(self.reverse_traffic().frames.max())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    scenario: Vec<Scenario>,
}

/// The scenario table.
#[derive(Debug, Clone)]
pub struct Scenarios {
    all: Vec<Scenario>,
}

impl Scenarios {
    /// The built-in table.
    pub fn builtin() -> Scenarios {
        Self::parse(BUILTIN, "built-in scenarios").expect("the built-in scenario table is valid (tested)")
    }

    /// Parses and validates a table.
    pub fn parse(text: &str, what: &str) -> Result<Scenarios, Error> {
        let table: Table = toml::from_str(text).map_err(|source| Error::Toml { what: what.into(), source })?;
        let mut names = std::collections::HashSet::new();
        for s in &table.scenario {
            if !names.insert(s.name.as_str()) {
                return Err(Error::Scenario { name: s.name.clone(), reason: "defined twice".into() });
            }
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::Scenario { name: s.name.clone(), reason: "names use [A-Za-z0-9_-]".into() });
            }
            s.traffic.validate(&s.name)?;
            if let Some(r) = &s.reverse {
                r.validate(&s.name)?;
            }
            s.validate_pipeline()?;
            if !(s.latency_rate_mpps > 0.0 && s.latency_rate_mpps.is_finite()) {
                return Err(Error::Scenario { name: s.name.clone(), reason: "latency_rate_mpps must be > 0".into() });
            }
        }
        Ok(Scenarios { all: table.scenario })
    }

    /// Every scenario, in table order.
    pub fn all(&self) -> &[Scenario] {
        &self.all
    }

    /// Looks up one scenario by name.
    pub fn get(&self, name: &str) -> Result<&Scenario, Error> {
        self.all.iter().find(|s| s.name == name).ok_or_else(|| self.unknown(name))
    }

    /// Expands names and group names, in table order without repeats; no names means the
    /// "default" group.
    pub fn select(&self, names: &[String]) -> Result<Vec<Scenario>, Error> {
        let wanted: Vec<String> = if names.is_empty() { vec!["default".into()] } else { names.to_vec() };
        let mut picked = vec![false; self.all.len()];
        for name in &wanted {
            let mut any = false;
            for (i, s) in self.all.iter().enumerate() {
                if &s.name == name || s.groups.iter().any(|g| g == name) {
                    picked[i] = true;
                    any = true;
                }
            }
            if !any {
                return Err(self.unknown(name));
            }
        }
        Ok(self.all.iter().zip(picked).filter(|(_, p)| *p).map(|(s, _)| s.clone()).collect())
    }

    fn unknown(&self, name: &str) -> Error {
        let mut known: Vec<&str> = self.all.iter().map(|s| s.name.as_str()).collect();
        let mut groups: Vec<&str> = self.all.iter().flat_map(|s| s.groups.iter().map(String::as_str)).collect();
        groups.sort_unstable();
        groups.dedup();
        known.extend(groups);
        Error::UnknownScenario { name: name.into(), known: known.join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_valid_and_default_is_cross_connect() {
        let s = Scenarios::builtin();
        let default: Vec<String> = s.select(&[]).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(default, ["cross-connect-64", "cross-connect-imix"]);
        let group = s.select(&["cross-connect".into()]).unwrap();
        assert_eq!(group.len(), 2);
        assert!(s.select(&["cross-connect-all".into()]).unwrap().len() >= 4);
        assert_eq!(s.get("cross-connect-imix").unwrap().max_frame_size(), 1518);
    }

    #[test]
    fn gateway_scenarios_name_their_topology_and_targets() {
        let s = Scenarios::builtin();
        let names: Vec<String> = s.select(&["gateway".into()]).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["gateway-hit-64", "gateway-hit-imix", "gateway-flow-setup"]);
        let hit = s.get("gateway-hit-64").unwrap();
        assert_eq!(hit.pipeline, Pipeline::Gateway);
        assert_eq!(hit.topology.as_deref(), Some("perf/topologies/gateway-one-router.toml"));
        assert!(hit.topology_path().unwrap().exists());
        assert_eq!(hit.target_ratio_io, 0.6);
        assert_eq!(hit.target_instructions_per_packet, Some(250.0));
        assert_eq!(hit.pipeline.references(), [Reference::TestpmdIo, Reference::TestpmdMacswap]);
        assert_eq!(hit.pipeline.peer(), Some(Reference::OvsDpdk));
        assert_eq!(Reference::OvsDpdk.name(), "ovs-dpdk");
        assert_eq!(Pipeline::CrossConnect.peer(), None);
        assert_eq!(hit.router_macs().unwrap(), Some([[2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 0x10, 2]]));
        let setup = s.get("gateway-flow-setup").unwrap();
        assert_eq!(setup.target_flow_setups_mpps_per_core, Some(1.0));
        assert!(setup.topology.as_deref().unwrap().ends_with("gateway-edge-tenant.toml"));
        assert_eq!(s.get("cross-connect-64").unwrap().router_macs().unwrap(), None);
    }

    #[test]
    fn gateway_fields_are_checked() {
        let one = |extra: &str, pipeline: &str| {
            format!(
                "[[scenario]]\nname = \"g\"\npipeline = \"{pipeline}\"\ndescription = \"d\"\n{extra}\n[scenario.traffic]\nframes = \"64\"\nflows = 4\nseed = 1\n"
            )
        };
        let topo = "topology = \"perf/topologies/gateway-one-router.toml\"";
        assert!(Scenarios::parse(&one(topo, "gateway"), "t").is_ok());
        let err = Scenarios::parse(&one("", "gateway"), "t").unwrap_err().to_string();
        assert!(err.contains("needs topology"), "{err}");
        let err = Scenarios::parse(&one(topo, "cross-connect"), "t").unwrap_err().to_string();
        assert!(err.contains("for gateway scenarios"), "{err}");
        let zero = format!("{topo}\ntarget_instructions_per_packet = 0.0");
        assert!(Scenarios::parse(&one(&zero, "gateway"), "t").is_err());
        let v6 = one(topo, "gateway").replace("seed = 1", "seed = 1\nipv6_share = 0.5");
        assert!(Scenarios::parse(&v6, "t").unwrap_err().to_string().contains("IPv4"));
        let parsed = Scenarios::parse(&one(&format!("{topo}\ntarget_flow_setups_mpps_per_core = 2.5"), "gateway"), "t");
        assert_eq!(parsed.unwrap().get("g").unwrap().target_flow_setups_mpps_per_core, Some(2.5));
    }

    #[test]
    fn tunnel_scenarios_send_one_way_through_their_tunnel() {
        let s = Scenarios::builtin();
        let names: Vec<String> = s.select(&["tunnel".into()]).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["gateway-vxlan-encap", "gateway-vxlan-decap", "gateway-gre-encap"]);
        let gw = crate::topology::GATEWAY_UNDERLAY_MAC;
        for (name, directions, encap, key) in [
            ("gateway-vxlan-encap", Directions::Forward, crate::packet::Encap::Vxlan, 4097),
            ("gateway-vxlan-decap", Directions::Reverse, crate::packet::Encap::Vxlan, 4097),
            ("gateway-gre-encap", Directions::Forward, crate::packet::Encap::Gre, 4098),
        ] {
            let sc = s.get(name).unwrap();
            assert_eq!(sc.pipeline, Pipeline::Gateway);
            assert_eq!(sc.directions, directions, "{name}");
            assert_eq!((sc.traffic.frames, sc.traffic.flows), (crate::FrameSizes::Fixed(64), 1024));
            assert_eq!(sc.target_ratio_io, 0.6);
            assert_eq!(sc.target_instructions_per_packet, Some(250.0));
            let t = sc.tunnel(gw).unwrap().expect("a tunnel");
            assert_eq!((t.encap, t.key, t.dst_mac), (encap, key, gw), "{name}");
            assert!(sc.is_tunnel().unwrap());
        }
        assert!(!s.get("gateway-hit-64").unwrap().is_tunnel().unwrap());
        assert_eq!(s.get("gateway-hit-64").unwrap().directions, Directions::Both, "the default");
        assert_eq!(s.get("cross-connect-64").unwrap().tunnel(gw).unwrap(), None);
    }

    #[test]
    fn directions_parse_and_pick_the_sending_ports() {
        let one = |d: &str| {
            format!(
                "[[scenario]]\nname = \"g\"\npipeline = \"cross-connect\"\ndescription = \"d\"\n{d}\n[scenario.traffic]\nframes = \"64\"\nflows = 4\nseed = 1\n"
            )
        };
        for (text, want, sends, streams) in [
            ("", Directions::Both, [true, true], 2),
            ("directions = \"both\"", Directions::Both, [true, true], 2),
            ("directions = \"forward\"", Directions::Forward, [true, false], 1),
            ("directions = \"reverse\"", Directions::Reverse, [false, true], 1),
        ] {
            let t = Scenarios::parse(&one(text), "t").unwrap();
            let d = t.get("g").unwrap().directions;
            assert_eq!(d, want, "{text}");
            assert_eq!([d.sends(0), d.sends(1)], sends);
            assert_eq!(d.streams(), streams);
        }
        assert!(Scenarios::parse(&one("directions = \"sideways\""), "t").is_err());
        // Gateway traffic takes its tunnel from the topology.
        let topo = "topology = \"perf/topologies/gateway-vxlan.toml\"";
        let vxlan = one(topo).replace("cross-connect", "gateway").replace("seed = 1", "seed = 1\nvxlan = { vni = 5 }");
        assert!(Scenarios::parse(&vxlan, "t").unwrap_err().to_string().contains("from the topology"));
    }

    #[test]
    fn selection_keeps_table_order_without_repeats() {
        let s = Scenarios::builtin();
        let picked =
            s.select(&["cross-connect-imix".into(), "cross-connect-64".into(), "cross-connect".into()]).unwrap();
        let names: Vec<&str> = picked.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cross-connect-64", "cross-connect-imix"]);
    }

    #[test]
    fn unknown_names_and_bad_tables_are_refused() {
        let s = Scenarios::builtin();
        let err = s.select(&["nat64".into()]).unwrap_err().to_string();
        assert!(err.contains("nat64") && err.contains("cross-connect-64"), "{err}");
        let dup = format!("{BUILTIN}\n{}", &BUILTIN[BUILTIN.find("[[scenario]]").unwrap()..]);
        assert!(Scenarios::parse(&dup, "dup").unwrap_err().to_string().contains("defined twice"));
        let bad = BUILTIN.replacen("flows = 1024", "flows = 0", 1);
        assert!(Scenarios::parse(&bad, "bad").is_err());
        let unknown_key = BUILTIN.replacen("seed = 1", "seed = 1\ncolour = \"red\"", 1);
        assert!(Scenarios::parse(&unknown_key, "typo").is_err());
        let unknown_pipeline = BUILTIN.replacen("pipeline = \"cross-connect\"", "pipeline = \"teleport\"", 1);
        assert!(Scenarios::parse(&unknown_pipeline, "pipeline").is_err());
    }
}
