//! `midogw topology import FILE --config CONFIG [--replace] [--skip-unsupported]`: the declarative
//! topology file (docs/topology.md) written into the store the config names, through
//! `control::Topology`, so it gets the same validation as the REST API.
//!
//! The file is checked first exactly as `topology check` does (every problem with its line and
//! column, nothing written). What the store cannot hold is listed next, also before anything is
//! written: IPv6 routes (the store's Route is IPv4, as MidoNet v5's) and bridge static MACs (no MAC
//! table in the store yet); `--skip-unsupported` imports the rest and says what it left out. The
//! `[underlay]` table has no store model: it is printed as the lines to put in the config.
//!
//! Imported objects are marked so a later `--replace` finds them: routers, bridges, chains, port
//! groups and IP address groups carry `tenantId = "midogw-import"` (ports, routes and rules go with
//! their device or chain); the tunnel zones are named `midogw-vxlan` / `midogw-gre`, and the hosts
//! are the members of those zones. This gateway's own Host is never deleted. A store call that
//! fails midway is rolled back by deleting what this run created, in reverse order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use control::{
    Bridge, Chain, Condition, DynStore, FragmentPolicy, Host, IpAddrGroup, Port, PortGroup, PortType, Range, Route,
    RouteType, Router, Rule, RuleType, Topology, TopologyError, TunnelZone, TunnelZoneHost, TunnelZoneType,
};
use ipnet::IpNet;
use midogw::flowtable::topology::{Binding, PortKind, PortLink, RouteOrigin, RouteType as FtRouteType, Snapshot};
use toml::Spanned;
use uuid::Uuid;

use crate::config::{line_column, Config, Problem, Problems};
use crate::topology::{self, Addresses, PortSpec, ProtoSpec, RawFile, RawPort, RawRule};

/// The `tenantId` that marks the routers, bridges, chains and groups an import created.
pub const IMPORT_TENANT: &str = "midogw-import";

/// The tunnel zones an import creates (one per encapsulation in use).
const IMPORT_ZONES: [&str; 2] = ["midogw-vxlan", "midogw-gre"];

/// The tunnel zone an import puts hosts of encapsulation `encap` in.
fn zone_name(encap: TunnelZoneType) -> &'static str {
    match encap {
        TunnelZoneType::Gre => IMPORT_ZONES[1],
        _ => IMPORT_ZONES[0],
    }
}

/// What the command line asked for.
pub struct Options {
    /// Delete the objects of a previous import first.
    pub replace: bool,
    /// Import without what the store cannot hold (listed in the output).
    pub skip_unsupported: bool,
}

/// Why nothing was imported, or what happened when a step failed.
#[derive(Debug)]
pub enum ImportError {
    /// The file has problems (line:column each); nothing was written.
    File(Problems),
    /// Anything else, already phrased for the operator.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for ImportError {
    fn from(e: anyhow::Error) -> Self {
        ImportError::Other(e)
    }
}

/// Imports `file` into the store of `cfg`; returns the summary to print.
pub fn import(file: &Path, cfg: &Config, options: &Options) -> Result<String, ImportError> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        ImportError::File(Problems {
            path: shown.clone(),
            list: vec![Problem { line: 0, column: 0, message: format!("cannot read the topology file: {e}") }],
        })
    })?;
    let ports: Vec<(String, u16)> = cfg.ports.iter().enumerate().map(|(i, p)| (p.name.clone(), i as u16)).collect();
    // The same checks as `topology check`: a file that would not load is not imported.
    topology::parse(&shown, &text, &ports, 1).map_err(ImportError::File)?;
    let raw: RawFile = toml::from_str(&text).map_err(|e| ImportError::Other(anyhow!("{shown}: {e}")))?;
    let unsupported = unsupported(&raw, &text);
    if !unsupported.is_empty() && !options.skip_unsupported {
        let mut list = unsupported.clone();
        for p in &mut list {
            p.message.push_str(" (pass --skip-unsupported to import the rest without it)");
        }
        return Err(ImportError::File(Problems { path: shown, list }));
    }
    // From here on SIGINT and SIGTERM stop the run between two store calls, and what it created
    // is rolled back as after a failed step, rather than leaving part of the file in the store.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install signal handler")?;
    }
    let topology = Topology::new(open_store(cfg, &stop)?);
    let mut out = String::new();
    if options.replace {
        let removed = remove_previous_import(&topology)?;
        let _ = writeln!(out, "replaced a previous import: deleted {removed} object(s)");
    }
    check_name_clashes(&topology, &raw)?;
    let gateway = if needs_gateway_host(&raw) { Some(gateway_host(cfg)?) } else { None };
    if stop.load(Ordering::Relaxed) {
        let mut msg = String::from("stopped by a signal before anything was imported");
        if options.replace {
            msg.push_str("; the previous import was already deleted (--replace)");
        }
        return Err(ImportError::Other(anyhow!(msg)));
    }
    let mut run = Importer { topology: &topology, created: Vec::new(), out: &mut out, stop: &stop };
    match run.import(&raw, gateway) {
        Ok(()) => {}
        Err(e) => {
            let what = run.created.len();
            let rollback = run.roll_back();
            let mut msg = format!("import failed: {e:#}\nrolled back the {what} object(s) this run had created");
            if let Err(r) = rollback {
                let _ = write!(msg, ", but the rollback failed too: {r:#}; delete the objects with tenantId {IMPORT_TENANT:?} (or run again with --replace)");
            }
            if options.replace {
                msg.push_str("\nthe previous import was already deleted (--replace)");
            }
            return Err(ImportError::Other(anyhow!(msg)));
        }
    }
    for p in &unsupported {
        let _ = writeln!(out, "skipped {shown}:{}:{}: {}", p.line, p.column, p.message);
    }
    if let Some(u) = &raw.underlay {
        out.push_str(&underlay_note(u.get_ref()));
    }
    Ok(out)
}

/// What the store cannot hold, with locations.
fn unsupported(raw: &RawFile, text: &str) -> Vec<Problem> {
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        Problem { line, column, message }
    };
    let mut list = Vec::new();
    for r in &raw.router {
        let r = r.get_ref();
        for route in &r.route {
            let route = route.get_ref();
            if route.dst.get_ref().parse::<IpNet>().is_ok_and(|n| n.addr().is_ipv6()) {
                list.push(at(
                    route.dst.span(),
                    format!(
                        "route {} of router {:?}: the store holds IPv4 routes only (MidoNet v5's Route model)",
                        route.dst.get_ref(),
                        r.name.get_ref()
                    ),
                ));
            }
        }
    }
    for b in &raw.bridge {
        for sm in &b.get_ref().static_mac {
            list.push(at(
                sm.span(),
                format!(
                    "static_mac {} of bridge {:?}: the store has no MAC table entries yet",
                    sm.get_ref().mac.get_ref(),
                    b.get_ref().name.get_ref()
                ),
            ));
        }
    }
    list
}

/// The config lines the file's `[underlay]` becomes (the store has no underlay).
fn underlay_note(u: &topology::RawUnderlay) -> String {
    let mut s = String::from(
        "note: [underlay] is not kept in the store; put it in the config (the gateway's own tunnel endpoint):\n",
    );
    let _ = writeln!(s, "  [underlay]");
    let _ = writeln!(s, "  port = {:?}", u.dpdk_port.get_ref());
    let _ = writeln!(s, "  address = {:?}", u.address.get_ref());
    if let Some(g) = &u.gateway {
        let _ = writeln!(s, "  gateway = {:?}", g.get_ref());
    }
    if let Some(p) = &u.vxlan_port {
        let _ = writeln!(s, "  vxlan_port = {}", p.get_ref());
    }
    s
}

/// The store `[store]` names, opened as `run` opens it.
fn open_store(cfg: &Config, stop: &AtomicBool) -> Result<DynStore> {
    Ok(crate::rest::OpenedStore::open(cfg, stop)?.store)
}

/// Deletes what an earlier import created (the marking rule in the module docs); returns how many
/// top-level objects went.
fn remove_previous_import(t: &Topology<DynStore>) -> Result<usize> {
    let mut removed = 0;
    let ours = |tenant: &Option<String>| tenant.as_deref() == Some(IMPORT_TENANT);
    // Chains first: their rules may name the routers' and bridges' ports, which the store
    // refuses to delete while a rule names them.
    for c in t.list::<Chain>()?.into_iter().filter(|c| ours(&c.tenant_id)) {
        t.delete_chain(c.id).with_context(|| format!("cannot delete the imported chain {}", c.id))?;
        removed += 1;
    }
    for r in t.list::<Router>()?.into_iter().filter(|r| ours(&r.tenant_id)) {
        t.delete_router(r.id).with_context(|| format!("cannot delete the imported router {}", r.id))?;
        removed += 1;
    }
    for b in t.list::<Bridge>()?.into_iter().filter(|b| ours(&b.tenant_id)) {
        t.delete_bridge(b.id).with_context(|| format!("cannot delete the imported bridge {}", b.id))?;
        removed += 1;
    }
    for g in t.list::<PortGroup>()?.into_iter().filter(|g| ours(&g.tenant_id)) {
        t.delete_port_group(g.id).with_context(|| format!("cannot delete the imported port group {}", g.id))?;
        removed += 1;
    }
    for g in t.list::<IpAddrGroup>()?.into_iter().filter(|g| ours(&g.tenant_id)) {
        t.delete_ip_addr_group(g.id)
            .with_context(|| format!("cannot delete the imported IP address group {}", g.id))?;
        removed += 1;
    }
    let zone_names = [zone_name(TunnelZoneType::Vxlan), zone_name(TunnelZoneType::Gre)];
    for zone in
        t.list::<TunnelZone>()?.into_iter().filter(|z| z.name.as_deref().is_some_and(|n| zone_names.contains(&n)))
    {
        for member in &zone.members {
            match t.get::<Host>(&member.host_id.to_string()) {
                // A live host is a real agent that joined the zone: it stays.
                Ok(h) if !h.alive => {
                    t.delete_host(h.id).with_context(|| format!("cannot delete the imported host {}", h.id))?;
                    removed += 1;
                }
                Ok(_) | Err(TopologyError::NotFound { .. }) => {}
                Err(e) => return Err(e).context("cannot read an imported host"),
            }
        }
        t.delete_tunnel_zone(zone.id).with_context(|| format!("cannot delete the tunnel zone {}", zone.id))?;
        removed += 1;
    }
    Ok(removed)
}

/// Refuses to import over objects with the file's names (a previous import without `--replace`,
/// or objects made over REST).
fn check_name_clashes(t: &Topology<DynStore>, raw: &RawFile) -> Result<()> {
    let mut clashes = Vec::new();
    let mut check = |kind: &str, wanted: BTreeSet<&str>, existing: Vec<(Option<String>, Uuid, bool)>| {
        for (name, id, imported) in existing {
            if let Some(n) = name.as_deref().filter(|n| wanted.contains(n)) {
                let how = if imported { " (imported earlier: use --replace)" } else { "" };
                clashes.push(format!("{kind} {n:?} already exists as {id}{how}"));
            }
        }
    };
    let ours = |tenant: &Option<String>| tenant.as_deref() == Some(IMPORT_TENANT);
    check(
        "router",
        names(raw.router.iter().map(|r| r.get_ref().name.get_ref().as_str()).collect()),
        t.list::<Router>()?.into_iter().map(|r| (r.name, r.id, ours(&r.tenant_id))).collect(),
    );
    check(
        "bridge",
        names(raw.bridge.iter().map(|b| b.get_ref().name.get_ref().as_str()).collect()),
        t.list::<Bridge>()?.into_iter().map(|b| (b.name, b.id, ours(&b.tenant_id))).collect(),
    );
    check(
        "chain",
        names(raw.chain.iter().map(|c| c.get_ref().name.get_ref().as_str()).collect()),
        t.list::<Chain>()?.into_iter().map(|c| (c.name, c.id, ours(&c.tenant_id))).collect(),
    );
    check(
        "port group",
        names(raw.port_group.iter().map(|g| g.get_ref().name.get_ref().as_str()).collect()),
        t.list::<PortGroup>()?.into_iter().map(|g| (g.name, g.id, ours(&g.tenant_id))).collect(),
    );
    check(
        "IP address group",
        names(raw.ip_addr_group.iter().map(|g| g.get_ref().name.get_ref().as_str()).collect()),
        t.list::<IpAddrGroup>()?.into_iter().map(|g| (g.name, g.id, ours(&g.tenant_id))).collect(),
    );
    let zones = t.list::<TunnelZone>()?;
    let imported_hosts: BTreeSet<Uuid> = zones
        .iter()
        .filter(|z| z.name.as_deref().is_some_and(|n| IMPORT_ZONES.contains(&n)))
        .flat_map(|z| z.members.iter().map(|m| m.host_id))
        .collect();
    check(
        "host",
        names(raw.host.iter().map(|h| h.get_ref().name.get_ref().as_str()).collect()),
        t.list::<Host>()?.into_iter().map(|h| (h.name, h.id, imported_hosts.contains(&h.id))).collect(),
    );
    let wanted_zones = names(raw.host.iter().map(|h| zone_name(encap_of(h.get_ref()))).collect());
    check("tunnel zone", wanted_zones, zones.into_iter().map(|z| (z.name, z.id, true)).collect());
    if clashes.is_empty() {
        return Ok(());
    }
    bail!("the store already has objects with the file's names; nothing was written:\n  {}", clashes.join("\n  "))
}

fn names(v: Vec<&str>) -> BTreeSet<&str> {
    v.into_iter().collect()
}

fn encap_of(h: &topology::RawHost) -> TunnelZoneType {
    match h.encap.as_ref().map(|e| e.get_ref().as_str()) {
        Some("gre") => TunnelZoneType::Gre,
        _ => TunnelZoneType::Vxlan,
    }
}

fn needs_gateway_host(raw: &RawFile) -> bool {
    let router_ports = raw.router.iter().flat_map(|r| r.get_ref().port.iter());
    let bridge_ports = raw.bridge.iter().flat_map(|b| b.get_ref().port.iter());
    router_ports.chain(bridge_ports).any(|p| p.get_ref().dpdk_port.is_some())
}

/// This gateway's Host id and name (appliance/host.rs: `[host] id` or the `host_id` file).
fn gateway_host(cfg: &Config) -> Result<(Uuid, String)> {
    Ok((crate::host::host_id(cfg)?, crate::host::host_name_or(cfg)))
}

/// One object this run created, for the rollback.
#[derive(Debug, Clone, Copy)]
enum Created {
    Chain(Uuid),
    PortGroup(Uuid),
    IpAddrGroup(Uuid),
    Host(Uuid),
    TunnelZone(Uuid),
    Router(Uuid),
    Bridge(Uuid),
    Port(Uuid),
    Route(Uuid),
    Rule(Uuid),
}

/// A file port's store id.
struct PortRef {
    id: Uuid,
}

struct Importer<'a> {
    topology: &'a Topology<DynStore>,
    created: Vec<Created>,
    out: &'a mut String,
    /// Set by SIGINT / SIGTERM.
    stop: &'a AtomicBool,
}

impl Importer<'_> {
    fn line(&mut self, s: String) {
        self.out.push_str(&s);
        self.out.push('\n');
    }

    /// Notes an object this run created (for the rollback); an error once a signal asked to stop.
    fn record(&mut self, created: Created) -> Result<()> {
        self.created.push(created);
        if self.stop.load(Ordering::Relaxed) {
            bail!("stopped by a signal");
        }
        Ok(())
    }

    fn import(&mut self, raw: &RawFile, gateway: Option<(Uuid, String)>) -> Result<()> {
        let t = self.topology;
        let tenant = || Some(IMPORT_TENANT.to_string());
        let mut chains: BTreeMap<&str, Uuid> = BTreeMap::new();
        for c in &raw.chain {
            let name = c.get_ref().name.get_ref();
            let chain = Chain { id: Uuid::nil(), tenant_id: tenant(), name: Some(name.clone()), rule_ids: Vec::new() };
            let chain = t.create_chain(chain).with_context(|| format!("chain {name:?}"))?;
            self.record(Created::Chain(chain.id))?;
            self.line(format!("chain {name} {}", chain.id));
            chains.insert(name, chain.id);
        }
        let chain = |c: &Option<Spanned<String>>| -> Result<Option<Uuid>> {
            c.as_ref()
                .map(|c| chains.get(c.get_ref().as_str()).copied().ok_or_else(|| anyhow!("no chain {:?}", c.get_ref())))
                .transpose()
        };

        // Hosts, each in the zone of its encapsulation.
        let mut zones: BTreeMap<&'static str, Uuid> = BTreeMap::new();
        let mut hosts: BTreeMap<&str, Uuid> = BTreeMap::new();
        for h in &raw.host {
            let h = h.get_ref();
            let name = h.name.get_ref();
            let encap = encap_of(h);
            let zone_name = zone_name(encap);
            let zone = match zones.get(zone_name) {
                Some(&z) => z,
                None => {
                    let zone = TunnelZone {
                        id: Uuid::nil(),
                        name: Some(zone_name.into()),
                        zone_type: encap,
                        members: Vec::new(),
                    };
                    let zone = t.create_tunnel_zone(zone).with_context(|| format!("tunnel zone {zone_name:?}"))?;
                    self.record(Created::TunnelZone(zone.id))?;
                    self.line(format!("tunnel zone {zone_name} {}", zone.id));
                    zones.insert(zone_name, zone.id);
                    zone.id
                }
            };
            let host = t.create_host(new_host(Uuid::nil(), name)).with_context(|| format!("host {name:?}"))?;
            self.record(Created::Host(host.id))?;
            let member = TunnelZoneHost {
                tunnel_zone_id: None,
                host_id: host.id,
                ip_address: h.tunnel_address.get_ref().clone(),
            };
            t.add_tunnel_zone_host(zone, member).with_context(|| format!("host {name:?} into {zone_name}"))?;
            self.line(format!("host {name} {} (in {zone_name} at {})", host.id, h.tunnel_address.get_ref()));
            hosts.insert(name, host.id);
        }
        if let Some((id, name)) = &gateway {
            match t.get::<Host>(&id.to_string()) {
                Ok(_) => self.line(format!("gateway host {name} {id} (exists)")),
                Err(TopologyError::NotFound { .. }) => {
                    t.create_host(new_host(*id, name)).with_context(|| format!("this gateway's host {id}"))?;
                    self.record(Created::Host(*id))?;
                    self.line(format!("gateway host {name} {id} (created)"));
                }
                Err(e) => return Err(e).context("cannot read this gateway's Host"),
            }
        }

        // Devices.
        let mut devices: BTreeMap<&str, Uuid> = BTreeMap::new();
        for r in &raw.router {
            let r = r.get_ref();
            let name = r.name.get_ref();
            let router = Router {
                id: Uuid::nil(),
                tenant_id: tenant(),
                name: Some(name.clone()),
                admin_state_up: true,
                inbound_filter_id: chain(&r.infilter)?,
                outbound_filter_id: chain(&r.outfilter)?,
                load_balancer_id: None,
                as_number: None,
                inbound_mirror_ids: Vec::new(),
                outbound_mirror_ids: Vec::new(),
                local_redirect_chain_id: None,
                forward_chain_id: None,
            };
            let router = t.create_router(router).with_context(|| format!("router {name:?}"))?;
            self.record(Created::Router(router.id))?;
            self.line(format!("router {name} {}", router.id));
            devices.insert(name, router.id);
        }
        for b in &raw.bridge {
            let b = b.get_ref();
            let name = b.name.get_ref();
            let bridge = Bridge {
                id: Uuid::nil(),
                tenant_id: tenant(),
                name: Some(name.clone()),
                admin_state_up: true,
                inbound_filter_id: chain(&b.inbound_chain)?,
                outbound_filter_id: chain(&b.outbound_chain)?,
                vx_lan_port_ids: Vec::new(),
                inbound_mirror_ids: Vec::new(),
                outbound_mirror_ids: Vec::new(),
                qos_policy_id: None,
            };
            let bridge = t.create_bridge(bridge).with_context(|| format!("bridge {name:?}"))?;
            self.record(Created::Bridge(bridge.id))?;
            self.line(format!("bridge {name} {}", bridge.id));
            devices.insert(name, bridge.id);
        }

        // Ports: those with a tunnel key from the file first, so the keys the store picks for the
        // others (the largest in use + 1) cannot take one the file names.
        let mut all: Vec<(&str, Option<usize>, usize, &RawPort)> = Vec::new();
        for (ri, r) in raw.router.iter().enumerate() {
            for (pi, p) in r.get_ref().port.iter().enumerate() {
                all.push((r.get_ref().name.get_ref(), Some(ri), pi, p.get_ref()));
            }
        }
        for b in &raw.bridge {
            for (pi, p) in b.get_ref().port.iter().enumerate() {
                all.push((b.get_ref().name.get_ref(), None, pi, p.get_ref()));
            }
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| all[i].3.tunnel_key.is_none());
        let mut ports: BTreeMap<String, PortRef> = BTreeMap::new();
        let mut port_lines: Vec<Option<String>> = vec![None; all.len()];
        for i in order {
            let (device_name, router_index, port_index, p) = all[i];
            let device = *devices.get(device_name).ok_or_else(|| anyhow!("no device {device_name:?}"))?;
            let reference = format!("{device_name}/{}", p.name.get_ref());
            let mut port = new_port(if router_index.is_some() { PortType::Router } else { PortType::Bridge });
            port.inbound_filter_id = chain(&p.inbound_chain)?;
            port.outbound_filter_id = chain(&p.outbound_chain)?;
            let mut shown = Vec::new();
            if let Some(ri) = router_index {
                let addresses: Vec<String> = match p.address.as_ref().map(|a| a.get_ref()) {
                    Some(Addresses::One(a)) => vec![a.clone()],
                    Some(Addresses::Many(v)) => v.clone(),
                    None => Vec::new(),
                };
                let mac = match &p.mac {
                    Some(m) => m.get_ref().to_ascii_lowercase(),
                    None => topology::default_mac(ri, port_index).to_string(),
                };
                shown.push(format!("{} mac {mac}", addresses.join(",")));
                port.port_subnet = Some(addresses);
                port.port_mac = Some(mac);
            }
            if let Some(d) = &p.dpdk_port {
                let (id, _) = gateway.as_ref().ok_or_else(|| anyhow!("no gateway host for {reference}"))?;
                port.host_id = Some(*id);
                port.interface_name = Some(d.get_ref().clone());
                shown.push(format!("bound to this gateway's {}", d.get_ref()));
            }
            if let Some(h) = &p.host {
                let host = hosts.get(h.get_ref().as_str()).ok_or_else(|| anyhow!("no host {:?}", h.get_ref()))?;
                let key =
                    p.tunnel_key.as_ref().map(|k| *k.get_ref()).ok_or_else(|| anyhow!("{reference}: no tunnel_key"))?;
                port.host_id = Some(*host);
                port.interface_name = Some(reference.clone());
                port.tunnel_key = Some(u64::try_from(key).map_err(|_| anyhow!("{reference}: tunnel_key {key}"))?);
                shown.push(format!("bound on {} with tunnel key {key:#x}", h.get_ref()));
            }
            let port = t.create_port(device, port).with_context(|| format!("port {reference}"))?;
            self.record(Created::Port(port.id))?;
            let shown = if shown.is_empty() { String::new() } else { format!(" ({})", shown.join("; ")) };
            port_lines[i] = Some(format!("port {reference} {}{shown}", port.id));
            ports.insert(reference, PortRef { id: port.id });
        }
        for line in port_lines.into_iter().flatten() {
            self.line(line);
        }
        let port = |s: &str| ports.get(s).map(|p| p.id).ok_or_else(|| anyhow!("no port {s:?}"));

        // Links, each pair once (naming the peer on one side is enough).
        let mut linked: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
        let sides = raw
            .router
            .iter()
            .map(|r| (r.get_ref().name.get_ref(), &r.get_ref().port))
            .chain(raw.bridge.iter().map(|b| (b.get_ref().name.get_ref(), &b.get_ref().port)));
        for (device_name, device_ports) in sides {
            for p in device_ports {
                let Some(peer) = &p.get_ref().peer else { continue };
                let here = port(&format!("{device_name}/{}", p.get_ref().name.get_ref()))?;
                let there = port(peer.get_ref())?;
                if linked.insert((here.min(there), here.max(there))) {
                    t.link_ports(here, there).with_context(|| {
                        format!("link {device_name}/{} - {}", p.get_ref().name.get_ref(), peer.get_ref())
                    })?;
                    self.line(format!("link {device_name}/{} <-> {}", p.get_ref().name.get_ref(), peer.get_ref()));
                }
            }
        }

        // Routes (IPv4: the store's Route model).
        for r in &raw.router {
            let r = r.get_ref();
            let router =
                *devices.get(r.name.get_ref().as_str()).ok_or_else(|| anyhow!("no router {:?}", r.name.get_ref()))?;
            for route in &r.route {
                let route = route.get_ref();
                let dst = parse_net(route.dst.get_ref())?;
                if dst.addr().is_ipv6() {
                    continue;
                }
                let src = match &route.src {
                    Some(s) => parse_net(s.get_ref())?,
                    None => IpNet::V4(Default::default()),
                };
                let route_type = match route.kind.as_ref().map(|k| k.get_ref().as_str()) {
                    None | Some("normal") => RouteType::Normal,
                    Some("blackhole") => RouteType::BlackHole,
                    Some("reject") => RouteType::Reject,
                    Some(other) => bail!("route type {other:?}"),
                };
                let next_hop_port = match &route.port {
                    Some(p) if route_type == RouteType::Normal => {
                        Some(port(&format!("{}/{}", r.name.get_ref(), p.get_ref()))?)
                    }
                    _ => None,
                };
                let weight = match &route.weight {
                    Some(w) => u32::try_from(*w.get_ref()).map_err(|_| anyhow!("route weight {}", w.get_ref()))?,
                    None => topology::DEFAULT_WEIGHT,
                };
                let model = Route {
                    id: Uuid::nil(),
                    router_id: None,
                    next_hop_port,
                    attributes: None,
                    dst_network_addr: Some(dst.network().to_string()),
                    dst_network_length: Some(dst.prefix_len().into()),
                    src_network_addr: Some(src.network().to_string()),
                    src_network_length: Some(src.prefix_len().into()),
                    next_hop_gateway: route.gateway.as_ref().map(|g| g.get_ref().clone()),
                    weight,
                    route_type,
                    learned: false,
                };
                let what = format!("route {} of router {}", route.dst.get_ref(), r.name.get_ref());
                let created = t.create_route(router, model).with_context(|| what.clone())?;
                self.record(Created::Route(created.id))?;
                self.line(format!("{what} {}", created.id));
            }
        }

        // Groups, then rules (which may name them).
        let mut port_groups: BTreeMap<&str, Uuid> = BTreeMap::new();
        for g in &raw.port_group {
            let g = g.get_ref();
            let name = g.name.get_ref();
            let pg = PortGroup {
                id: Uuid::nil(),
                tenant_id: tenant(),
                name: Some(name.clone()),
                stateful: g.stateful,
                port_ids: Vec::new(),
            };
            let pg = t.create_port_group(pg).with_context(|| format!("port group {name:?}"))?;
            self.record(Created::PortGroup(pg.id))?;
            for m in g.members.get_ref() {
                t.add_port_group_port(pg.id, port(m)?).with_context(|| format!("port group {name:?} member {m:?}"))?;
            }
            self.line(format!("port group {name} {} ({} member(s))", pg.id, g.members.get_ref().len()));
            port_groups.insert(name, pg.id);
        }
        let mut addr_groups: BTreeMap<&str, Uuid> = BTreeMap::new();
        for g in &raw.ip_addr_group {
            let g = g.get_ref();
            let name = g.name.get_ref();
            let group = IpAddrGroup {
                id: Uuid::nil(),
                tenant_id: tenant(),
                name: Some(name.clone()),
                ip_addr_ports: Vec::new(),
                inbound_chain_id: None,
                outbound_chain_id: None,
                rule_ids: Vec::new(),
            };
            let group = t.create_ip_addr_group(group).with_context(|| format!("IP address group {name:?}"))?;
            self.record(Created::IpAddrGroup(group.id))?;
            for a in g.addresses.get_ref() {
                t.add_ip_addr(group.id, a, None).with_context(|| format!("IP address group {name:?} address {a}"))?;
            }
            self.line(format!("IP address group {name} {} ({} address(es))", group.id, g.addresses.get_ref().len()));
            addr_groups.insert(name, group.id);
        }
        let names = Names {
            chains: &chains,
            ports: &ports,
            devices: &devices,
            port_groups: &port_groups,
            addr_groups: &addr_groups,
        };
        for c in &raw.chain {
            let c = c.get_ref();
            let chain_id =
                *chains.get(c.name.get_ref().as_str()).ok_or_else(|| anyhow!("no chain {:?}", c.name.get_ref()))?;
            for (i, rule) in c.rule.iter().enumerate() {
                let what = format!("rule {} of chain {}", i + 1, c.name.get_ref());
                let mut model = names.rule(rule.get_ref()).with_context(|| what.clone())?;
                model.position = Some(i as u32 + 1);
                let created = t.create_rule(chain_id, model).with_context(|| what.clone())?;
                self.record(Created::Rule(created.id))?;
                self.line(format!("{what} {}", created.id));
            }
        }
        Ok(())
    }

    /// Deletes what this run created, newest first. Objects a cascade already took are skipped.
    fn roll_back(&mut self) -> Result<()> {
        let t = self.topology;
        let mut first_error = None;
        while let Some(c) = self.created.pop() {
            let result = match c {
                Created::Chain(id) => t.delete_chain(id),
                Created::PortGroup(id) => t.delete_port_group(id),
                Created::IpAddrGroup(id) => t.delete_ip_addr_group(id),
                Created::Host(id) => t.delete_host(id),
                Created::TunnelZone(id) => t.delete_tunnel_zone(id),
                Created::Router(id) => t.delete_router(id),
                Created::Bridge(id) => t.delete_bridge(id),
                Created::Port(id) => t.delete_port(id),
                Created::Route(id) => t.delete_route(id),
                Created::Rule(id) => t.delete_rule(id),
            };
            match result {
                Ok(()) | Err(TopologyError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!("rollback: cannot delete {c:?}: {e}");
                    first_error.get_or_insert(anyhow!("cannot delete {c:?}: {e}"));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The store ids of the file's names, for rule conditions.
struct Names<'n> {
    chains: &'n BTreeMap<&'n str, Uuid>,
    ports: &'n BTreeMap<String, PortRef>,
    devices: &'n BTreeMap<&'n str, Uuid>,
    port_groups: &'n BTreeMap<&'n str, Uuid>,
    addr_groups: &'n BTreeMap<&'n str, Uuid>,
}

impl Names<'_> {
    fn rule(&self, r: &RawRule) -> Result<Rule> {
        let inverted: BTreeSet<&str> = r.not.iter().map(|n| n.get_ref().as_str()).collect();
        let not = |field: &str| inverted.contains(field);
        let mut c = Condition::default();
        let (rule_type, jump_chain_id) = match r.action.get_ref().as_str() {
            "accept" => (RuleType::Accept, None),
            "drop" => (RuleType::Drop, None),
            "reject" => (RuleType::Reject, None),
            "continue" => (RuleType::Continue, None),
            "return" => (RuleType::Return, None),
            "jump" => {
                let target = r.jump_to.as_ref().ok_or_else(|| anyhow!("jump without jump_to"))?;
                let id = self.chains.get(target.get_ref().as_str()).ok_or_else(|| anyhow!("no chain {target:?}"))?;
                (RuleType::Jump, Some(*id))
            }
            other => bail!("action {other:?}"),
        };
        if let Some(m) = &r.hw_src {
            c.dl_src = Some(m.get_ref().to_ascii_lowercase());
            c.inv_dl_src = not("hw_src");
        }
        if let Some(m) = &r.hw_dst {
            c.dl_dst = Some(m.get_ref().to_ascii_lowercase());
            c.inv_dl_dst = not("hw_dst");
        }
        if let Some(e) = &r.ethertype {
            c.dl_type = Some(u16::try_from(*e.get_ref()).map_err(|_| anyhow!("ethertype {}", e.get_ref()))?);
            c.inv_dl_type = not("ethertype");
        }
        if let Some(list) = &r.in_ports {
            c.in_ports = list.get_ref().iter().map(|p| self.port(p)).collect::<Result<_>>()?;
            c.inv_in_ports = not("in_ports");
        }
        if let Some(list) = &r.out_ports {
            c.out_ports = list.get_ref().iter().map(|p| self.port(p)).collect::<Result<_>>()?;
            c.inv_out_ports = not("out_ports");
        }
        if let Some(tos) = &r.tos {
            c.nw_tos = Some(u8::try_from(*tos.get_ref()).map_err(|_| anyhow!("tos {}", tos.get_ref()))?);
            c.inv_nw_tos = not("tos");
        }
        if let Some(p) = &r.proto {
            let proto = match p.get_ref() {
                ProtoSpec::Number(n) => u8::try_from(*n).ok(),
                ProtoSpec::Name(s) => protocol_number(s),
            };
            c.nw_proto = Some(proto.ok_or_else(|| anyhow!("proto"))?);
            c.inv_nw_proto = not("proto");
        }
        if let Some(s) = &r.src {
            let n = parse_net(s.get_ref())?.trunc();
            c.nw_src_address = Some(n.network().to_string());
            c.nw_src_length = Some(n.prefix_len().into());
            c.inv_nw_src = not("src");
        }
        if let Some(d) = &r.dst {
            let n = parse_net(d.get_ref())?.trunc();
            c.nw_dst_address = Some(n.network().to_string());
            c.nw_dst_length = Some(n.prefix_len().into());
            c.inv_nw_dst = not("dst");
        }
        if let Some(p) = &r.src_port {
            c.tp_src = Some(port_range(p.get_ref())?);
            c.inv_tp_src = not("src_port");
        }
        if let Some(p) = &r.dst_port {
            c.tp_dst = Some(port_range(p.get_ref())?);
            c.inv_tp_dst = not("dst_port");
        }
        if let Some(f) = &r.fragment_policy {
            c.fragment_policy = Some(match f.get_ref().as_str() {
                "any" => FragmentPolicy::Any,
                "header" => FragmentPolicy::Header,
                "nonheader" => FragmentPolicy::Nonheader,
                "unfragmented" => FragmentPolicy::Unfragmented,
                other => bail!("fragment_policy {other:?}"),
            });
        }
        if let Some(g) = &r.port_group {
            c.port_group =
                Some(*self.port_groups.get(g.get_ref().as_str()).ok_or_else(|| anyhow!("no port group {g:?}"))?);
            c.inv_port_group = not("port_group");
        }
        if let Some(g) = &r.ip_addr_group_src {
            c.ip_addr_group_src =
                Some(*self.addr_groups.get(g.get_ref().as_str()).ok_or_else(|| anyhow!("no IP address group {g:?}"))?);
            c.inv_ip_addr_group_src = not("ip_addr_group_src");
        }
        if let Some(g) = &r.ip_addr_group_dst {
            c.ip_addr_group_dst =
                Some(*self.addr_groups.get(g.get_ref().as_str()).ok_or_else(|| anyhow!("no IP address group {g:?}"))?);
            c.inv_ip_addr_group_dst = not("ip_addr_group_dst");
        }
        if let Some(d) = &r.traversed_device {
            c.traversed_device =
                Some(*self.devices.get(d.get_ref().as_str()).ok_or_else(|| anyhow!("no device {d:?}"))?);
            c.inv_traversed_device = not("traversed_device");
        }
        match r.flow.as_ref().map(|f| f.get_ref().as_str()) {
            None => {}
            Some("forward") => c.match_forward_flow = true,
            Some("return") => c.match_return_flow = true,
            Some(other) => bail!("flow {other:?}"),
        }
        Ok(Rule {
            id: Uuid::nil(),
            chain_id: None,
            rule_type,
            position: None,
            meter_name: None,
            flow_action: None,
            nat_targets: None,
            jump_chain_id,
            jump_chain_name: None,
            pop_vlan: None,
            push_vlan: None,
            target_port_id: None,
            ingress: None,
            fail_open: None,
            condition: c,
        })
    }

    fn port(&self, reference: &str) -> Result<Uuid> {
        self.ports.get(reference).map(|p| p.id).ok_or_else(|| anyhow!("no port {reference:?}"))
    }
}

fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "icmpv6" => 58,
        _ => return None,
    })
}

fn port_range(p: &PortSpec) -> Result<Range> {
    let (start, end) = match p {
        PortSpec::One(n) => (*n, *n),
        PortSpec::Range(s) => {
            let (a, b) = s.split_once('-').ok_or_else(|| anyhow!("port range {s:?}"))?;
            (
                a.trim().parse().map_err(|_| anyhow!("port range {s:?}"))?,
                b.trim().parse().map_err(|_| anyhow!("port range {s:?}"))?,
            )
        }
    };
    let start = u32::try_from(start).map_err(|_| anyhow!("port {start}"))?;
    let end = u32::try_from(end).map_err(|_| anyhow!("port {end}"))?;
    Ok(Range { start, end })
}

fn parse_net(s: &str) -> Result<IpNet> {
    s.parse().map_err(|_| anyhow!("{s:?} is not an address/prefix"))
}

fn new_host(id: Uuid, name: &str) -> Host {
    Host {
        id,
        name: Some(name.to_string()),
        addresses: Vec::new(),
        host_interfaces: Vec::new(),
        alive: false,
        flooding_proxy_weight: None,
        container_weight: None,
        container_limit: None,
        enforce_container_limit: None,
    }
}

fn new_port(port_type: PortType) -> Port {
    Port {
        id: Uuid::nil(),
        port_type,
        device_id: None,
        admin_state_up: true,
        inbound_filter_id: None,
        outbound_filter_id: None,
        tunnel_key: None,
        vif_id: None,
        host_id: None,
        interface_name: None,
        peer_id: None,
        inbound_mirror_ids: Vec::new(),
        outbound_mirror_ids: Vec::new(),
        post_in_filter_mirror_ids: Vec::new(),
        pre_out_filter_mirror_ids: Vec::new(),
        insertion_ids: Vec::new(),
        qos_policy_id: None,
        active: false,
        port_address: None,
        network_address: None,
        network_length: None,
        port_subnet: None,
        port_mac: None,
        rtr_port_vni: None,
        off_ramp_vxlan: None,
        service_container_id: None,
        vlan_id: None,
        vtep_id: None,
    }
}

/// A description of a snapshot's routers, ports, links, bindings, hosts and routes that does not
/// depend on ids or device order, one fact per line, sorted: two snapshots that route alike (a
/// file's and its import's, compiled from the store) describe alike. Router ports are named by MAC,
/// routers by their ports' MACs, bridge ports by what they are plugged into.
pub fn describe(snap: &Snapshot) -> Vec<String> {
    let port_key = |id| {
        let p = snap.port(id);
        match (p.as_router_port(), p.link) {
            (Some(rp), _) => rp.mac.to_string(),
            (None, PortLink::Exterior(Binding::Remote { tunnel_key, .. })) => format!("tunnel:{tunnel_key:#x}"),
            (None, PortLink::Exterior(Binding::Local { dpdk_port })) => format!("dpdk:{dpdk_port}"),
            (None, PortLink::Peer(peer)) => match snap.port(peer).as_router_port() {
                Some(rp) => format!("peer:{}", rp.mac),
                None => "peer:?".into(),
            },
            (None, PortLink::Unplugged) => "unplugged".into(),
        }
    };
    let router_key = |ports: &[midogw::flowtable::topology::PortId]| {
        let mut macs: Vec<String> = ports.iter().map(|&p| port_key(p)).collect();
        macs.sort();
        format!("router[{}]", macs.join(" "))
    };
    let mut lines = Vec::new();
    for h in snap.hosts() {
        lines.push(format!("host {} {:?}", h.tunnel_addr, h.encap));
    }
    for r in snap.routers() {
        let rk = router_key(&r.ports);
        for &p in r.ports.iter() {
            let port = snap.port(p);
            let mut addrs: Vec<String> =
                port.as_router_port().map_or(Vec::new(), |rp| rp.addresses.iter().map(|a| a.to_string()).collect());
            addrs.sort();
            lines.push(format!(
                "{rk} port {} addresses {} {}",
                port_key(p),
                addrs.join(","),
                link(snap, port.link, &port_key)
            ));
        }
        for route in r.routes.iter() {
            let via = route.port.map_or("-".to_string(), &port_key);
            let gw = route.gateway.map_or("-".to_string(), |g| g.to_string());
            let origin = match route.origin {
                RouteOrigin::Configured => "configured",
                RouteOrigin::PortAddress(_) => "port",
            };
            let kind = match route.kind {
                FtRouteType::Normal => "normal",
                FtRouteType::Blackhole => "blackhole",
                FtRouteType::Reject => "reject",
                FtRouteType::Local => "local",
            };
            lines.push(format!(
                "{rk} route {} from {} {kind} via {via} gateway {gw} weight {} {origin}",
                route.dst, route.src, route.weight
            ));
        }
        let chain = |c: Option<midogw::flowtable::topology::ChainId>| {
            c.map_or("-".to_string(), |c| snap.chain(c).name.to_string())
        };
        lines.push(format!("{rk} infilter {} outfilter {}", chain(r.infilter), chain(r.outfilter)));
    }
    for b in snap.bridges() {
        let mut keys: Vec<String> = b.ports.iter().map(|&p| port_key(p)).collect();
        keys.sort();
        let bk = format!("bridge[{}]", keys.join(" "));
        for &p in b.ports.iter() {
            let port = snap.port(p);
            if let PortKind::Bridge(_) = port.kind {
                lines.push(format!("{bk} port {} {}", port_key(p), link(snap, port.link, &port_key)));
            }
        }
    }
    lines.push(format!("rules {}", snap.rules().len()));
    lines.sort();
    lines
}

fn link(snap: &Snapshot, link: PortLink, port_key: &dyn Fn(midogw::flowtable::topology::PortId) -> String) -> String {
    match link {
        PortLink::Unplugged => "unplugged".into(),
        PortLink::Peer(p) => format!("linked to {}", port_key(p)),
        PortLink::Exterior(Binding::Local { dpdk_port }) => format!("bound to dpdk port {dpdk_port}"),
        PortLink::Exterior(Binding::Remote { host, tunnel_key }) => {
            format!("bound on {} key {tunnel_key:#x}", snap.host(host).tunnel_addr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_has_only_its_ipv6_routes_unsupported() {
        let text = include_str!("topology.gateway.example.toml");
        let raw: RawFile = toml::from_str(text).unwrap();
        let list = unsupported(&raw, text);
        let shown: Vec<String> = list.iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect();
        assert_eq!(list.len(), 2, "{shown:#?}");
        assert!(shown[0].contains("route 2001:db8:10::/64 of router \"edge\""), "{shown:#?}");
        assert!(shown[1].contains("route ::/0 of router \"tenant\""), "{shown:#?}");
    }

    #[test]
    fn rules_map_every_condition_to_the_model() {
        let text = r#"
[[chain]]
name = "c"
[[chain.rule]]
action = "jump"
jump_to = "c"
hw_src = "02:AA:00:00:00:01"
ethertype = 0x0800
proto = "udp"
src = "10.1.2.3/8"
dst_port = "53-54"
src_port = 7
tos = 4
fragment_policy = "header"
flow = "return"
port_group = "pg"
ip_addr_group_dst = "ag"
traversed_device = "r"
in_ports = ["r/a"]
not = ["src", "in_ports", "ip_addr_group_dst"]
"#;
        let raw: RawFile = toml::from_str(text).unwrap();
        let (c, pg, ag, r, a) =
            (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4), Uuid::from_u128(5));
        let chains = BTreeMap::from([("c", c)]);
        let ports = BTreeMap::from([("r/a".to_string(), PortRef { id: a })]);
        let devices = BTreeMap::from([("r", r)]);
        let port_groups = BTreeMap::from([("pg", pg)]);
        let addr_groups = BTreeMap::from([("ag", ag)]);
        let names = Names {
            chains: &chains,
            ports: &ports,
            devices: &devices,
            port_groups: &port_groups,
            addr_groups: &addr_groups,
        };
        let rule = names.rule(raw.chain[0].get_ref().rule[0].get_ref()).unwrap();
        assert_eq!((rule.rule_type, rule.jump_chain_id), (RuleType::Jump, Some(c)));
        let k = &rule.condition;
        assert_eq!((k.dl_src.as_deref(), k.inv_dl_src), (Some("02:aa:00:00:00:01"), false));
        assert_eq!((k.dl_type, k.nw_proto, k.nw_tos), (Some(0x0800), Some(17), Some(4)));
        assert_eq!((k.nw_src_address.as_deref(), k.nw_src_length, k.inv_nw_src), (Some("10.0.0.0"), Some(8), true));
        assert_eq!(k.tp_dst, Some(Range { start: 53, end: 54 }));
        assert_eq!(k.tp_src, Some(Range { start: 7, end: 7 }));
        assert_eq!(k.fragment_policy, Some(FragmentPolicy::Header));
        assert!(k.match_return_flow && !k.match_forward_flow);
        assert_eq!((k.port_group, k.inv_port_group), (Some(pg), false));
        assert_eq!((k.ip_addr_group_dst, k.inv_ip_addr_group_dst), (Some(ag), true));
        assert_eq!(k.traversed_device, Some(r));
        assert_eq!((k.in_ports.as_slice(), k.inv_in_ports), (&[a][..], true));
    }
}
