//! A Prometheus server scraping the appliance's `/metrics`, and promtool's lint: the binaries of
//! Debian's `prometheus` package, unpacked by scripts/setup.sh into [`PROMETHEUS_ROOT`] (installing
//! the package would start its service). The server runs in a private directory on a free port,
//! scraping once a second, and is killed by PID on drop.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::appliance::{free_addr, TempDir};
use super::http::http;

/// Where scripts/setup.sh unpacks Debian's `prometheus` package.
pub const PROMETHEUS_ROOT: &str = "/opt/midogw-test/prometheus";

fn binary(name: &str) -> PathBuf {
    let path = Path::new(PROMETHEUS_ROOT).join("usr/bin").join(name);
    assert!(path.exists(), "{} is missing: scripts/setup.sh unpacks Debian's prometheus package there", path.display());
    path
}

/// `promtool check metrics` on an exposition: `Err` with promtool's complaints.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    let mut child = Command::new(binary("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
    }
}

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts a server scraping `target`'s `/metrics` every second as job `midogw`, and waits
    /// until it answers queries.
    pub fn start(tag: &str, target: SocketAddr) -> Prometheus {
        let dir = TempDir::new(&format!("prometheus-{tag}"));
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: midogw\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let addr = free_addr();
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus runs");
        let prometheus = Prometheus { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_ok(addr, "/-/ready").is_none() {
            assert!(Instant::now() < deadline, "prometheus never got ready:\n{}", prometheus.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// An instant query's result vector (`[{metric, value: [time, "v"]}, ...]`).
    pub fn query(&self, query: &str) -> Vec<Value> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = http_ok(self.addr, &format!("/api/v1/query?query={encoded}"))
            .unwrap_or_else(|| panic!("query {query} failed:\n{}", self.log()));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `query` has a sample with a value of at least `at_least`; returns the samples.
    pub fn wait_for(&self, query: &str, at_least: f64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.query(query);
            let value = |s: &Value| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
            if result.iter().filter_map(value).any(|v| v >= at_least) {
                return result;
            }
            assert!(Instant::now() < deadline, "{query} never reached {at_least}: {result:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }
}

/// The body of a 200 answer; `None` while nothing listens or for another status.
fn http_ok(addr: SocketAddr, target: &str) -> Option<String> {
    std::net::TcpStream::connect(addr).ok()?;
    let r = http(addr, "GET", target, &[], None);
    (r.status == 200).then_some(r.body)
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
