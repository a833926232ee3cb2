//! Two appliances on one ZooKeeper (a real server from the Debian package): gateway 1 forwards
//! between two namespaces with `[topology] source = "store"`; gateway 2 has no ports and serves
//! only its REST API. What one writes the other sees: a router built through gateway 2 carries
//! gateway 1's traffic; a bridge made through gateway 1 is listed by gateway 2. Stopping ZooKeeper
//! keeps the traffic flowing on the last topology, a write meanwhile is refused with a clear 503
//! Error-v1 (nothing is silently lost), and when ZooKeeper is back a write made through gateway 2
//! reaches gateway 1's cores again. Then gateway 2 crashes: gateway 1 shows its Host dead (the
//! session's alive key, not the stored document, which still says alive) and deletes it.

mod common;

use std::time::{Duration, Instant};

use common::appliance::{free_addr, ping_once, ping_works, Appliance, TempDir};
use common::http::{http, Client};
use common::zookeeper::ZkServer;
use serde_json::{json, Value};

const ROUTER: &str = "application/vnd.org.midonet.Router-v3+json";
const BRIDGE: &str = "application/vnd.org.midonet.Bridge-v4+json";
const BRIDGES: &str = "application/vnd.org.midonet.collection.Bridge-v4+json";
const PORT: &str = "application/vnd.org.midonet.Port-v3+json";
const CHAIN: &str = "application/vnd.org.midonet.Chain-v1+json";
const RULE: &str = "application/vnd.org.midonet.Rule-v2+json";
const HOST: &str = "application/vnd.org.midonet.Host-v3+json";
const HOSTS: &str = "application/vnd.org.midonet.collection.Host-v3+json";
const ERROR: &str = "application/vnd.org.midonet.Error-v1+json";
const API: &str = "/midonet-api";
const GATEWAY1: &str = "8d1f0c36-0b7c-4f63-9a55-3c1d2e4f5a61";
const GATEWAY2: &str = "8d1f0c36-0b7c-4f63-9a55-3c1d2e4f5a62";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn config(zk: &ZkServer, rest: std::net::SocketAddr, host: &str, ports: &str) -> String {
    format!(
        "{ports}[rest]\nlisten = \"{rest}\"\n\n[store]\nkind = \"zookeeper\"\nhosts = \"{}\"\nroot = \"/midogw-test\"\n\
         session_timeout_ms = 4000\noperation_timeout_ms = 2000\n\n[auth]\nprovider = \"mock\"\n\n[host]\nid = \"{host}\"\n",
        zk.hosts()
    )
}

#[test]
fn two_gateways_share_one_zookeeper_and_survive_its_outage() {
    let mut zk = ZkServer::start("gw");
    let tag = format!("mzk{}", std::process::id());
    let ns_a = common::NetNs::new(&format!("{tag}a"));
    let ns_b = common::NetNs::new(&format!("{tag}b"));
    let veth_a = common::Veth::new(&ns_a, &format!("{tag}a"), "10.205.1.2/24");
    let veth_b = common::Veth::new(&ns_b, &format!("{tag}b"), "10.205.2.2/24");
    ns_a.exec(&["ip", "route", "add", "default", "via", "10.205.1.1"]);
    ns_b.exec(&["ip", "route", "add", "default", "via", "10.205.2.1"]);

    let dir = TempDir::new("zk-gateways");
    let (rest1, rest2) = (free_addr(), free_addr());
    let ports = format!(
        "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-zk-{tag}\"\n\n\
         [[port]]\nname = \"up0\"\ndevargs = \"net_af_packet0,iface={}\"\n\n\
         [[port]]\nname = \"up1\"\ndevargs = \"net_af_packet1,iface={}\"\n\n\
         [workers]\ncores = [1]\n\n[topology]\nsource = \"store\"\n\n",
        veth_a.outer, veth_b.outer
    );
    let config1 = dir.write("gw1.toml", &config(&zk, rest1, GATEWAY1, &ports));
    let config2 = dir.write("gw2.toml", &config(&zk, rest2, GATEWAY2, ""));
    let gw1 = Appliance::start(&config1, &dir.0.join("gw1.json"), rest1, true);
    let mut gw2 = Appliance::start(&config2, &dir.0.join("gw2.json"), rest2, false);
    let (api1, api2) = (Client::login(rest1, "admin", "x"), Client::login(rest2, "admin", "x"));

    // Built through gateway 2, bound to gateway 1's interfaces: gateway 1 forwards with it.
    let chain = api2.create(&format!("{API}/chains"), CHAIN, &json!({"name": "edge-in"}));
    let router =
        api2.create(&format!("{API}/routers"), ROUTER, &json!({"name": "edge", "inboundFilterId": id(&chain)}));
    for (addr, net, interface) in [("10.205.1.1", "10.205.1.0", "up0"), ("10.205.2.1", "10.205.2.0", "up1")] {
        let body = json!({"type": "Router", "portAddress": addr, "networkAddress": net, "networkLength": 24,
                          "hostId": GATEWAY1, "interfaceName": interface});
        api2.create(&format!("{API}/routers/{}/ports", id(&router)), PORT, &body);
    }
    assert!(ping_works(&ns_a, "10.205.2.2", Duration::from_secs(10)), "gateway 1 routes what gateway 2 wrote");
    // And the other way: gateway 2 lists what gateway 1 created.
    let bridge = api1.create(&format!("{API}/bridges"), BRIDGE, &json!({"name": "made-on-gw1"}));
    let listed = api2.get(&format!("{API}/bridges"), BRIDGES);
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == bridge["id"]), "{listed}");

    // ZooKeeper goes away: forwarding goes on with the last topology, well past the session timeout.
    zk.stop();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(6) {
        let (ok, out) = ping_once(&ns_a, "10.205.2.2");
        assert!(ok, "traffic keeps flowing while ZooKeeper is down ({:?} in):\n{out}", outage.elapsed());
    }
    // A write during the outage is refused quickly and says why; nothing is half written.
    let started = Instant::now();
    let body = json!({"type": "drop", "nwProto": 1}).to_string();
    let refused = http(
        rest1,
        "POST",
        &format!("{API}/chains/{}/rules", id(&chain)),
        &[("X-Auth-Token", api1.token()), ("Content-Type", RULE)],
        Some(&body),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("content-type").is_some_and(|t| t.starts_with(ERROR)), "{:?}", refused.headers);
    assert!(refused.body.to_lowercase().contains("zookeeper"), "the error names the cause: {}", refused.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused within the operation timeout: {:?}",
        started.elapsed()
    );

    // ZooKeeper is back (same data): both gateways reconnect and resync; a drop rule written through
    // gateway 2 stops gateway 1's pings, and the refused write did not sneak in meanwhile.
    zk.launch();
    let rules = |api: &Client| -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = http(
                api.addr,
                "GET",
                &format!("{API}/chains/{}/rules", id(&chain)),
                &[("X-Auth-Token", api.token()), ("Accept", "application/vnd.org.midonet.collection.Rule-v2+json")],
                None,
            );
            if r.status == 200 {
                return r.json().as_array().unwrap().len();
            }
            assert!(Instant::now() < deadline, "gateway never reconnected: {} {}", r.status, r.body);
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(rules(&api2), 0, "the write refused during the outage was not applied");
    assert_eq!(rules(&api1), 0);
    api2.create(&format!("{API}/chains/{}/rules", id(&chain)), RULE, &json!({"type": "drop", "nwProto": 1}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ping_once(&ns_a, "10.205.2.2").0 {
        assert!(Instant::now() < deadline, "the rule written after the outage never reached gateway 1's cores");
    }
    assert!(
        gw2.log().iter().all(|l| !l.contains("panicked")),
        "gateway 2 survived the outage:\n{}",
        gw2.log().join("\n")
    );

    // Gateway 2 crashes (SIGKILL, no clean stop, its Host document still saying alive): once its
    // session times out, gateway 1 shows its Host dead, and lets an operator delete it.
    let alive = |id: &str| api1.get(&format!("{API}/hosts/{id}"), HOST)["alive"].clone();
    assert_eq!((alive(GATEWAY1), alive(GATEWAY2)), (json!(true), json!(true)));
    drop(gw2);
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(GATEWAY2) != json!(false) {
        assert!(Instant::now() < deadline, "the crashed gateway's Host is still shown alive");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(alive(GATEWAY1), json!(true));
    let listed = api1.get(&format!("{API}/hosts"), HOSTS);
    let shown: Vec<(&str, bool)> =
        listed.as_array().unwrap().iter().map(|h| (h["id"].as_str().unwrap(), h["alive"] == true)).collect();
    assert!(shown.contains(&(GATEWAY1, true)) && shown.contains(&(GATEWAY2, false)), "{listed}");
    api1.delete(&format!("{API}/hosts/{GATEWAY2}"));

    let report = gw1.stop();
    let feed = &report["topology_feed"];
    assert_eq!(feed["compile_errors"], 0, "{feed}");
    assert_eq!(feed["store_unreachable"], false, "{feed}");
}
