//! Existing MidoNet clients must work: the MidoNet project's own Python client (PyPI
//! `midonetclient` 5.2.0, installed into a virtualenv by scripts/setup.sh) drives `midogw run`'s
//! REST API through tests/clients/midonetclient_drive.py: hosts, tunnel zones, routers, ports,
//! links, routes, bridges, bindings, chains, rules, port and address groups, their reads, updates
//! and deletes, and the errors of bad requests as the client reports them.

mod common;

use std::path::Path;
use std::process::Command;

use common::appliance::{free_addr, Appliance, TempDir};

const PYTHON: &str = "/opt/midogw-test/midonetclient/bin/python";
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/midonetclient_drive.py");

#[test]
fn the_midonet_python_client_builds_and_reads_a_gateway_topology() {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is missing: scripts/setup.sh installs midonetclient");
    let dir = TempDir::new("midonetclient");
    let rest = free_addr();
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[rest]\nlisten = \"{rest}\"\n\n[store]\npath = \"store.redb\"\n\n[auth]\nprovider = \"mock\"\n\n\
             [host]\nname = \"gw-client\"\n"
        ),
    );
    let appliance = Appliance::start(&config, &dir.0.join("stats.json"), rest, false);
    let out = Command::new(PYTHON)
        .args([DRIVER, &format!("http://{rest}/midonet-api"), "gw-client"])
        .output()
        .expect("run the midonetclient driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "midonetclient failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("midonetclient: all checks passed"), "{stdout}\n{stderr}");
    appliance.stop();
}
