//! The REST API of the real `midogw run`, over plain HTTP on loopback: a box with no [[port]] serves
//! the control plane on the embedded store; login with a local account hashed by
//! `midogw hash-password`, the root resource, POST a router then GET its `Location`, SIGTERM,
//! restart on the same store and find the router again. Plus the config problems of `[rest]`/`[store]`,
//! and `[rest.https]`: login over TLS with curl verifying a self-signed rcgen certificate.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MIDOGW: &str = env!("CARGO_BIN_EXE_midogw");
const ROUTER: &str = "application/vnd.org.midonet.Router-v3+json";
const ERROR: &str = "application/vnd.org.midonet.Error-v1+json";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("midogw-rest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `midogw run`, SIGKILLed if a test fails before stopping it. Its log (stderr) is read
/// on a thread as it comes, so that a test can wait for what it logs.
struct Appliance {
    child: Option<Child>,
    log: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Appliance {
    fn start(config: &Path, addr: SocketAddr) -> Appliance {
        let mut child = Command::new(MIDOGW)
            .args(["run", "--config", config.to_str().unwrap(), "--stats-interval", "0"])
            .env("MIDOGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn midogw");
        let log = common::stderr_lines(&mut child);
        let mut app = Appliance { child: Some(child), log, seen: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = app.child().try_wait().unwrap() {
                panic!("midogw exited early ({status}): {}", app.stderr());
            }
            assert!(Instant::now() < deadline, "REST API never came up on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        app
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().unwrap()
    }

    /// The whole log, once midogw exited (the reader thread ends with its stderr).
    fn stderr(&mut self) -> String {
        self.seen.extend(self.log.iter());
        self.seen.join("\n")
    }

    /// Waits up to `limit` for a log line containing `needle`: whether one came. What the
    /// appliance does after its REST API answers (start the data path, compile, publish) takes
    /// its time, more of it on a loaded machine.
    fn logs_within(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            match self.log.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// SIGTERM, then the exit status must be success; returns the log.
    fn terminate(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child().id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "midogw did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.stderr();
        assert!(status.success(), "{status}: {log}");
        self.child = None;
        log
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the minimal client.
fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    // Absolute URIs (links in the API's bodies) are fetched by their path.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Response { status, headers, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        body.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    body
}

fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn login(addr: SocketAddr, user: &str, password: &str) -> Response {
    let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    http(addr, "POST", "/midonet-api/login", &[("Authorization", &basic)], None)
}

fn token(addr: SocketAddr) -> String {
    let r = login(addr, "admin", "s3cret pass");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["key"].as_str().unwrap().to_string()
}

fn hash_password(password: &str) -> String {
    let mut child =
        Command::new(MIDOGW).arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn rest_on_a_box_without_ports_persists_across_restart() {
    let dir = TempDir::new("persist");
    let addr = free_addr();
    let hash = hash_password("s3cret pass");
    // A relative store path: relative to the config file's directory.
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n[workers]\ncores = [1]\n\n\
             [rest]\nlisten = \"{addr}\"\n\n[store]\nkind = \"embedded\"\npath = \"state/store.redb\"\n\n\
             [auth]\nprovider = \"local\"\n\n[[auth.account]]\nuser = \"admin\"\npassword_hash = \"{hash}\"\n\
             tenant = \"admin\"\nrole = \"admin\"\n"
        ),
    );

    let app = Appliance::start(&config, addr);
    // Wrong password: 401 with an Error-v1 body.
    let bad = login(addr, "admin", "wrong");
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert_eq!(bad.header("content-type"), Some(ERROR));
    assert_eq!(bad.json()["code"], 401, "{}", bad.body);
    // No token: 401 as well.
    assert_eq!(http(addr, "GET", "/midonet-api/", &[], None).status, 401);

    let key = token(addr);
    let auth = [("X-Auth-Token", key.as_str())];
    let root = http(addr, "GET", "/midonet-api/", &auth, None);
    assert_eq!(root.status, 200, "{}", root.body);
    let routers = root.json()["routers"].as_str().expect("routers link").to_string();
    let body = json!({"name": "edge", "tenantId": "admin"}).to_string();
    let created = http(addr, "POST", &routers, &[auth[0], ("Content-Type", ROUTER)], Some(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    let location = created.header("location").expect("Location").to_string();
    let got = http(addr, "GET", &location, &[auth[0], ("Accept", ROUTER)], None);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["name"], "edge");
    let log = app.terminate();
    assert!(log.contains("REST API listening"), "{log}");
    assert!(dir.0.join("state/store.redb").exists(), "store created relative to the config");

    // Same store after a restart: the router is still there; the old token is not.
    let app = Appliance::start(&config, addr);
    assert_eq!(http(addr, "GET", &location, &auth, None).status, 401);
    let key = token(addr);
    let got = http(addr, "GET", &location, &[("X-Auth-Token", &key), ("Accept", ROUTER)], None);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["name"], "edge");
    app.terminate();
}

#[test]
fn mock_provider_and_no_accounts_are_logged_loudly() {
    let dir = TempDir::new("mock");
    let addr = free_addr();
    let base = format!(
        "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n[workers]\ncores = [1]\n\n[rest]\nlisten = \"{addr}\"\n\n\
         [store]\npath = \"{}\"\n",
        dir.0.join("store.redb").display()
    );
    let mock = dir.write("mock.toml", &format!("{base}\n[auth]\nprovider = \"mock\"\n"));
    let app = Appliance::start(&mock, addr);
    assert_eq!(login(addr, "anyone", "anything").status, 200);
    let log = app.terminate();
    assert!(log.contains("WARN") && log.contains("provider = \"mock\""), "{log}");

    let nobody = dir.write("nobody.toml", &base);
    let app = Appliance::start(&nobody, addr);
    assert_eq!(login(addr, "admin", "x").status, 401);
    let log = app.terminate();
    assert!(log.contains("NOBODY can log in"), "{log}");
}

#[test]
fn bind_failure_names_the_address() {
    let dir = TempDir::new("bind");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\"]\n\n[workers]\ncores = [1]\n\n[rest]\nlisten = \"{addr}\"\n\n\
             [store]\npath = \"store.redb\"\n"
        ),
    );
    let out = Command::new(MIDOGW).args(["run", "--config", config.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains(&format!("cannot listen for REST on {addr}")), "{text}");
}

#[test]
fn check_config_locates_rest_store_and_auth_problems() {
    let dir = TempDir::new("check");
    let config = dir.write(
        "bad.toml",
        "[workers]\ncores = [1]\n\n[rest]\nlisten = \"localhost\"\n\n[store]\nkind = \"zookeeper\"\n\
         hosts = \"zk1:2181\"\nroot = \"midonet/\"\n\n[[auth.account]]\nuser = \"a\"\npassword_hash = \"plain\"\n\
         tenant = \"t\"\nrole = \"root\"\n",
    );
    let out = Command::new(MIDOGW).args(["check-config", config.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let path = config.display();
    assert!(text.contains(&format!("{path}:5:10: [rest] listen \"localhost\" is not an ADDR:PORT")), "{text}");
    assert!(
        text.contains(&format!("{path}:10:8: [store] root \"midonet/\" must be empty or an absolute path")),
        "{text}"
    );
    assert!(text.contains(&format!("{path}:14:17: password_hash is not an argon2 PHC string")), "{text}");
    assert!(text.contains(&format!("{path}:16:8: role \"root\" is unknown")), "{text}");
}

#[test]
fn rest_runs_beside_the_data_plane() {
    let dir = TempDir::new("ports");
    let addr = free_addr();
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-rest-{}\"\n\n\
             [[port]]\nname = \"a\"\ndevargs = \"net_ring0\"\n\n[[port]]\nname = \"b\"\ndevargs = \"net_ring1\"\n\n\
             [workers]\ncores = [1]\n\n[rest]\nlisten = \"{addr}\"\n\n[store]\npath = \"store.redb\"\n\n\
             [auth]\nprovider = \"mock\"\n",
            std::process::id()
        ),
    );
    let mut app = Appliance::start(&config, addr);
    let r = login(addr, "ops", "x");
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(http(addr, "GET", "/midonet-api/", &[("X-Auth-Token", &key)], None).status, 200);
    // REST answers before the data path is up (EAL, ports, workers): a SIGTERM before then would
    // stop a box whose worker never started.
    assert!(app.logs_within("cross-connect worker starting", Duration::from_secs(30)), "no worker started");
    let log = app.terminate();
    assert!(log.contains("cross-connect worker starting") && log.contains("REST API stopped"), "{log}");
}

/// `curl` with the given arguments; the test fails loudly when curl is missing (scripts/setup.sh
/// installs it).
fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): install it with scripts/setup.sh"))
}

/// A `curl -i` response: status, lower-case headers, body.
fn parse_curl(out: &std::process::Output) -> Response {
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()));
    Response { status, headers: headers.collect(), body: body.to_string() }
}

#[test]
fn https_login_with_a_client_that_verifies_the_certificate() {
    let dir = TempDir::new("https");
    let (addr, tls_addr) = (free_addr(), free_addr());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.write("cert.pem", &ck.cert.pem());
    dir.write("key.pem", &ck.signing_key.serialize_pem());
    dir.write("other-key.pem", &rcgen::KeyPair::generate().unwrap().serialize_pem());
    let hash = hash_password("s3cret pass");
    let text = format!(
        "[workers]\ncores = [1]\n\n[rest]\nlisten = \"{addr}\"\n\n[rest.https]\nlisten = \"{tls_addr}\"\n\
         cert = \"cert.pem\"\nkey = \"key.pem\"\n\n[store]\npath = \"store.redb\"\n\n\
         [[auth.account]]\nuser = \"admin\"\npassword_hash = \"{hash}\"\ntenant = \"admin\"\nrole = \"admin\"\n"
    );
    let config = dir.write("midogw.toml", &text);
    let check = Command::new(MIDOGW).args(["check-config", config.to_str().unwrap()]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let app = Appliance::start(&config, addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(tls_addr).is_err() {
        assert!(Instant::now() < deadline, "HTTPS never came up on {tls_addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The certificate names localhost: resolve it to the listener and verify against the cert.
    let port = tls_addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let base = format!("https://localhost:{port}/midonet-api");
    let cacert = cert.to_str().unwrap();
    let login = curl(&[
        "-i",
        "--cacert",
        cacert,
        "--resolve",
        &resolve,
        "-u",
        "admin:s3cret pass",
        "-X",
        "POST",
        "-d",
        "{}",
        &format!("{base}/login"),
    ]);
    let login = parse_curl(&login);
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.header("content-type"), Some("application/vnd.org.midonet.Token-v1+json"));
    let key = login.json()["key"].as_str().expect("token").to_string();
    assert!(login.header("set-cookie").is_some_and(|c| c.starts_with(&format!("sessionId={key}"))));
    let token = format!("X-Auth-Token: {key}");
    let accept = "Accept: application/vnd.org.midonet.Application-v5+json";
    let root = parse_curl(&curl(&["-i", "--cacert", cacert, "--resolve", &resolve, "-H", &token, "-H", accept, &base]));
    assert_eq!(root.status, 200, "{}", root.body);
    assert_eq!(root.json()["version"], "v5.0");
    // The token works on the plain listener too: one API, two transports.
    assert_eq!(http(addr, "GET", "/midonet-api/", &[("X-Auth-Token", &key)], None).status, 200);
    // Without the certificate as trust anchor, verification fails (curl exit 60).
    let untrusted = curl(&["--resolve", &resolve, &format!("{base}/login")]);
    assert_eq!(untrusted.status.code(), Some(60), "{}", String::from_utf8_lossy(&untrusted.stderr));
    let log = app.terminate();
    assert!(log.contains("REST API listening over HTTPS"), "{log}");

    // A key that is not the certificate's is a check-config problem at the key's line and column.
    let bad = dir.write("bad.toml", &text.replace("key = \"key.pem\"", "key = \"other-key.pem\""));
    let out = Command::new(MIDOGW).args(["check-config", bad.to_str().unwrap()]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    let want = format!("{}:10:7: [rest.https] key ", bad.display());
    assert!(report.contains(&want) && report.contains("the private key is not the certificate's"), "{report}");
}

/// A store whose topology the compiler refuses (written by an older version, or by hand) must not
/// keep the appliance down: the control plane comes up so the operator can repair it over REST,
/// the data path runs an empty topology meanwhile, and the repair reaches the cores.
#[test]
fn a_stored_topology_that_does_not_compile_starts_the_appliance_and_can_be_repaired() {
    let dir = TempDir::new("broken");
    let addr = free_addr();
    let bad_rule = {
        let topology = control::Topology::new(control::EmbeddedStore::open(dir.0.join("store.redb")).unwrap());
        let chain: control::Chain = serde_json::from_value(json!({"name": "c"})).unwrap();
        let chain = topology.create_chain(chain).unwrap();
        let rule: control::Rule = serde_json::from_value(json!({"type": "accept"})).unwrap();
        let mut rule = topology.create_rule(chain.id, rule).unwrap();
        // The topology service refuses this rule now, so it is written to the store directly.
        rule.condition.cond_invert = true;
        let data = serde_json::to_vec(&rule).unwrap();
        let op = control::Op::Update { kind: control::Kind::Rule, id: rule.id.to_string(), data };
        control::Store::commit(topology.store(), None, &[op]).unwrap();
        let ctx = control::compile::CompileContext::default();
        let e = control::compile::compile(&topology, &ctx).unwrap_err();
        assert!(e.to_string().contains("condInvert"), "{e}");
        rule.id
    };
    let config = dir.write(
        "midogw.toml",
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"-m\", \"512\", \"--no-shconf\"]\nfile_prefix = \"mgwt-broken-{}\"\n\n\
             [[port]]\nname = \"a\"\ndevargs = \"net_ring0\"\n\n[[port]]\nname = \"b\"\ndevargs = \"net_ring1\"\n\n\
             [workers]\ncores = [1]\n\n[topology]\nsource = \"store\"\n\n[rest]\nlisten = \"{addr}\"\n\n\
             [store]\npath = \"store.redb\"\n\n[auth]\nprovider = \"mock\"\n",
            std::process::id()
        ),
    );
    let mut app = Appliance::start(&config, addr);
    let key = login(addr, "ops", "x").json()["key"].as_str().unwrap().to_string();
    // REST comes up before the data path: wait for the first compile to refuse the store (a repair
    // before it would leave nothing to refuse).
    assert!(app.logs_within("cannot compile the stored topology", Duration::from_secs(30)), "no first compile");
    let rule = format!("/midonet-api/rules/{bad_rule}");
    let deleted = http(addr, "DELETE", &rule, &[("X-Auth-Token", &key)], None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    // Once it compiles, the API refuses what would break it again.
    let chains = http(addr, "GET", "/midonet-api/chains", &[("X-Auth-Token", &key)], None).json();
    let rules = chains[0]["rules"].as_str().unwrap().to_string();
    let body = json!({"type": "accept", "condInvert": true}).to_string();
    let media = "application/vnd.org.midonet.Rule-v2+json";
    let refused = http(addr, "POST", &rules, &[("X-Auth-Token", &key), ("Content-Type", media)], Some(&body));
    assert_eq!(refused.status, 400, "{}", refused.body);
    // The feed picks the repair up within milliseconds, and says so once the cores have it.
    assert!(app.logs_within("topology published", Duration::from_secs(30)), "the repair was not published");
    let log = app.terminate();
    assert!(log.contains("cannot compile the stored topology"), "{log}");
    assert!(log.contains("pipeline worker starting"), "the data path ran: {log}");
    assert!(log.contains("topology published"), "the repaired topology reached the cores: {log}");
}
