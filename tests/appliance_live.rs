//! Live topology changes through the REST API of a running `midogw run` with
//! `[topology] source = "store"`: the appliance registers itself as a Host with its DPDK ports as
//! interfaces; two routers built over REST, the uplinks bound to those interfaces; a ping between
//! two namespaces fails for want of a route, starts working when the route is POSTed, stops when a
//! drop rule is POSTed, and works again when the rule is DELETEd. The process never restarts.

mod common;

use std::time::Duration;

use common::appliance::{free_addr, ping_once, ping_stops, ping_works, Appliance, TempDir};
use common::http::Client;
use serde_json::{json, Value};

const ROUTER: &str = "application/vnd.org.midonet.Router-v3+json";
const PORT: &str = "application/vnd.org.midonet.Port-v3+json";
const ROUTE: &str = "application/vnd.org.midonet.Route-v1+json";
const CHAIN: &str = "application/vnd.org.midonet.Chain-v1+json";
const RULE: &str = "application/vnd.org.midonet.Rule-v2+json";
const HOSTS: &str = "application/vnd.org.midonet.collection.Host-v3+json";
const API: &str = "/midonet-api";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn rest_changes_reach_the_running_data_path() {
    let tag = format!("mlv{}", std::process::id());
    let ns_a = common::NetNs::new(&format!("{tag}a"));
    let ns_b = common::NetNs::new(&format!("{tag}b"));
    let veth_a = common::Veth::new(&ns_a, &format!("{tag}a"), "10.204.1.2/24");
    let veth_b = common::Veth::new(&ns_b, &format!("{tag}b"), "10.204.2.2/24");
    ns_a.exec(&["ip", "route", "add", "default", "via", "10.204.1.1"]);
    ns_b.exec(&["ip", "route", "add", "default", "via", "10.204.2.1"]);

    let dir = TempDir::new("live-rest");
    let rest = free_addr();
    let metrics = free_addr();
    let config = dir.0.join("midogw.toml");
    std::fs::write(
        &config,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-live-{tag}\"\n\n\
             [[port]]\nname = \"up0\"\ndevargs = \"net_af_packet0,iface={}\"\n\n\
             [[port]]\nname = \"up1\"\ndevargs = \"net_af_packet1,iface={}\"\n\n\
             [workers]\ncores = [1]\n\n[topology]\nsource = \"store\"\n\n[rest]\nlisten = \"{rest}\"\n\n\
             [store]\npath = \"store.redb\"\n\n[auth]\nprovider = \"mock\"\n\n[host]\nname = \"gw-live\"\n\n\
             [metrics]\nlisten = \"{metrics}\"\n",
            veth_a.outer, veth_b.outer
        ),
    )
    .unwrap();
    let stats = dir.0.join("stats.json");
    let appliance = Appliance::start(&config, &stats, rest, true);
    let api = Client::login(rest, "admin", "any");

    // The gateway registered itself with its DPDK ports as interfaces.
    let hosts = api.get(&format!("{API}/hosts"), HOSTS);
    let host = hosts.as_array().unwrap().iter().find(|h| h["name"] == "gw-live").expect("the gateway's Host");
    assert_eq!(host["alive"], true, "{host}");
    let interfaces: Vec<&str> =
        host["hostInterfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(interfaces, ["up0", "up1"], "{host}");
    let host_id = id(host);

    // An edge router with uplink A, a tenant router with uplink B, linked by a /30; the tenant
    // router routes everything to the edge, the edge router has no route to B's subnet yet.
    let edge = api.create(&format!("{API}/routers"), ROUTER, &json!({"name": "edge"}));
    let tenant_chain = api.create(&format!("{API}/chains"), CHAIN, &json!({"name": "tenant-in"}));
    let tenant =
        api.create(&format!("{API}/routers"), ROUTER, &json!({"name": "tenant", "inboundFilterId": id(&tenant_chain)}));
    let port = |router: &Value, addr: &str, net: &str, len: u32, binding: Option<&str>| {
        let mut body = json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": len});
        if let Some(interface) = binding {
            body["hostId"] = json!(host_id);
            body["interfaceName"] = json!(interface);
        }
        api.create(&format!("{API}/routers/{}/ports", id(router)), PORT, &body)
    };
    port(&edge, "10.204.1.1", "10.204.1.0", 24, Some("up0"));
    let edge_link = port(&edge, "169.254.9.1", "169.254.9.0", 30, None);
    let tenant_link = port(&tenant, "169.254.9.2", "169.254.9.0", 30, None);
    port(&tenant, "10.204.2.1", "10.204.2.0", 24, Some("up1"));
    let link = common::http::http(
        rest,
        "POST",
        &format!("{API}/ports/{}/link", id(&edge_link)),
        &[("X-Auth-Token", api.token()), ("Content-Type", "application/vnd.org.midonet.PortLink-v1+json")],
        Some(&json!({"peerId": id(&tenant_link)}).to_string()),
    );
    assert!(link.status == 201 || link.status == 204, "link: {} {}", link.status, link.body);
    let route = |router: &Value, dst: &str, len: u32, via: &Value, gateway: &str| {
        let body = json!({"srcNetworkAddr": "0.0.0.0", "srcNetworkLength": 0, "dstNetworkAddr": dst,
                          "dstNetworkLength": len, "nextHopPort": id(via), "nextHopGateway": gateway,
                          "type": "Normal", "weight": 100});
        api.create(&format!("{API}/routers/{}/routes", id(router)), ROUTE, &body)
    };
    route(&tenant, "0.0.0.0", 0, &tenant_link, "169.254.9.1");

    // No route from the edge to B's subnet: the edge router answers net unreachable.
    assert!(ping_works(&ns_a, "10.204.1.1", Duration::from_secs(5)), "the edge router answers on its port");
    let (ok, out) = ping_once(&ns_a, "10.204.2.2");
    assert!(!ok && out.contains("Unreachable"), "no route yet:\n{out}");

    // The route, over REST: the ping starts working, through both routers.
    route(&edge, "10.204.2.0", 24, &edge_link, "169.254.9.2");
    assert!(ping_works(&ns_a, "10.204.2.2", Duration::from_secs(5)), "the new route carries the ping");
    let (ok, out) = ping_once(&ns_a, "10.204.2.2");
    assert!(ok && out.contains("ttl=62"), "two router hops:\n{out}");

    // A drop rule for ICMP on the tenant router's inbound filter stops it.
    let rule = api.create(
        &format!("{API}/chains/{}/rules", id(&tenant_chain)),
        RULE,
        &json!({"type": "drop", "nwProto": 1, "position": 1}),
    );
    assert!(ping_stops(&ns_a, "10.204.2.2", Duration::from_secs(5)), "the drop rule stops the ping");
    for _ in 0..3 {
        let (ok, out) = ping_once(&ns_a, "10.204.2.2");
        assert!(!ok, "the drop rule stops the ping:\n{out}");
    }
    // Prometheus sees them live (the report a scrape shows is at most a second old).
    let sample = |text: &str, series: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let scraped = loop {
        let r = common::http::http(metrics, "GET", "/metrics", &[], None);
        assert_eq!(r.status, 200, "{}", r.body);
        let drops = sample(&r.body, "midogw_worker_drops_total{worker=\"0\",reason=\"rule_drop\"}");
        if drops >= Some(3) {
            break r.body;
        }
        assert!(std::time::Instant::now() < deadline, "the rule's drops never showed:\n{}", r.body);
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(sample(&scraped, "midogw_port_rx_packets_total{port=\"up0\"}") > Some(0), "{scraped}");
    assert_eq!(sample(&scraped, "midogw_port_link_up{port=\"up1\"}"), Some(1), "{scraped}");
    // The driver's own per-queue count (one RX queue), read just after its basic one.
    let rx_q0 = sample(&scraped, "midogw_port_xstats_total{port=\"up0\",name=\"rx_q0_packets\"}");
    assert!(rx_q0 >= sample(&scraped, "midogw_port_rx_packets_total{port=\"up0\"}"), "{scraped}");
    assert!(sample(&scraped, "midogw_worker_simulated_total{worker=\"0\"}") > Some(0), "{scraped}");
    assert!(sample(&scraped, "midogw_topology_published_total") >= Some(2), "{scraped}");
    common::prometheus::promtool_check(&scraped).unwrap_or_else(|e| panic!("promtool: {e}\n{scraped}"));
    // A Prometheus server scrapes it (asking for OpenMetrics) and has the same figures.
    let prometheus = common::prometheus::Prometheus::start(&tag, metrics);
    prometheus.wait_for("up{job=\"midogw\"}", 1.0);
    prometheus.wait_for("midogw_worker_drops_total{reason=\"rule_drop\"}", 3.0);
    let ports = prometheus.wait_for("midogw_port_rx_packets_total", 1.0);
    assert_eq!(ports.len(), 2, "both ports: {ports:?}");
    drop(prometheus);
    api.delete(&format!("{API}/rules/{}", id(&rule)));
    assert!(ping_works(&ns_a, "10.204.2.2", Duration::from_secs(5)), "deleting the rule restores the ping");

    let report = appliance.stop();
    let feed = &report["topology_feed"];
    println!("topology feed: {feed}\npipeline: {}", report["pipelines"][0]);
    assert!(feed["published"].as_u64().unwrap() >= 3, "route, rule and rule deletion each published: {feed}");
    assert_eq!(feed["compile_errors"], 0, "{feed}");
    let pipeline = &report["pipelines"][0];
    assert!(pipeline["snapshots_taken"].as_u64().unwrap() >= 3, "{pipeline}");
    assert!(pipeline["cache_invalidated"].as_u64().unwrap() > 0, "flows of changed devices were dropped: {pipeline}");
    assert_eq!(pipeline["snapshot_generation"], feed["generation"], "{pipeline} {feed}");
}

#[test]
fn a_new_box_registers_one_host_that_survives_restarts() {
    let dir = TempDir::new("live-host");
    let rest = free_addr();
    let config = dir.0.join("midogw.toml");
    std::fs::write(
        &config,
        format!("[rest]\nlisten = \"{rest}\"\n\n[store]\npath = \"store/store.redb\"\n\n[auth]\nprovider = \"mock\"\n"),
    )
    .unwrap();
    let stats = dir.0.join("stats.json");
    let host_ids = |api: &Client| -> Vec<(String, bool)> {
        let hosts = api.get(&format!("{API}/hosts"), HOSTS);
        hosts.as_array().unwrap().iter().map(|h| (id(h), h["alive"].as_bool().unwrap())).collect()
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let app = Appliance::start(&config, &stats, rest, false);
        let api = Client::login(rest, "admin", "any");
        let hosts = host_ids(&api);
        assert_eq!(hosts.len(), 1, "one Host, registered at start: {hosts:?}");
        assert!(hosts[0].1, "alive while running: {hosts:?}");
        seen.push(hosts[0].0.clone());
        app.stop();
        // A clean stop leaves the Host in the store, not alive.
        let store = control::EmbeddedStore::open(dir.0.join("store/store.redb")).unwrap();
        let host: control::model::Host = control::Topology::new(store).get(&hosts[0].0).unwrap();
        assert!(!host.alive, "a stopped gateway is not alive: {host:?}");
    }
    assert_eq!(seen[0], seen[1], "a restart is the same host (id kept in store/host_id)");
    let kept = std::fs::read_to_string(dir.0.join("store/host_id")).unwrap();
    assert_eq!(kept.trim(), seen[0]);
}
