//! `midogw run` as a child process for the end-to-end tests: started with a config, its stderr
//! collected on a thread, stopped with SIGTERM (and killed if a test fails first), its JSON report
//! read back. Plus the small helpers those tests share (a scratch directory, a free port, ping).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::NetNs;

/// The appliance binary under test.
pub const MIDOGW: &str = env!("CARGO_BIN_EXE_midogw");

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("midogw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
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

/// A loopback address with a port nobody listens on now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A running `midogw run`; killed if the test fails before stopping it.
pub struct Appliance {
    child: Option<std::process::Child>,
    log: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stats: PathBuf,
    /// `[eal] file_prefix` of the config: the EAL runtime directory to remove if the appliance has
    /// to be killed (a clean stop removes it itself).
    file_prefix: Option<String>,
}

impl Appliance {
    /// Starts `midogw run --config CONFIG` and waits until its REST API at `rest` accepts
    /// connections and, when `workers` is set, its workers run. The JSON report goes to `stats`.
    pub fn start(config: &Path, stats: &Path, rest: SocketAddr, workers: bool) -> Appliance {
        let mut child = Command::new(MIDOGW)
            .args(["run", "--config", config.to_str().unwrap(), "--stats-interval", "0"])
            .args(["--stats-json", stats.to_str().unwrap()])
            .env("MIDOGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start midogw");
        let log = super::stderr_lines(&mut child);
        let file_prefix = std::fs::read_to_string(config).ok().and_then(|text| {
            let line = text.lines().find(|l| l.trim_start().starts_with("file_prefix"))?;
            Some(line.split('"').nth(1)?.to_string())
        });
        let mut app = Appliance { child: Some(child), log, seen: Vec::new(), stats: stats.to_path_buf(), file_prefix };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            app.seen.extend(app.log.try_iter());
            let ready = (!workers || app.seen.iter().any(|l| l.contains("worker starting")))
                && app.seen.iter().any(|l| l.contains("registered as host"))
                && TcpStream::connect(rest).is_ok();
            if ready {
                return app;
            }
            if let Some(status) = app.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                app.seen.extend(app.log.try_iter());
                panic!("midogw exited early ({status}):\n{}", app.seen.join("\n"));
            }
            assert!(Instant::now() < deadline, "midogw did not come up:\n{}", app.seen.join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log lines so far.
    pub fn log(&mut self) -> &[String] {
        self.seen.extend(self.log.try_iter());
        &self.seen
    }

    /// SIGTERM; waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                self.seen.extend(self.log.try_iter());
                return s;
            }
            assert!(Instant::now() < deadline, "midogw did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, a clean exit, and the JSON report.
    pub fn stop(mut self) -> Value {
        let status = self.terminate();
        assert!(status.success(), "midogw exit status {status}:\n{}", self.seen.join("\n"));
        serde_json::from_str(&std::fs::read_to_string(&self.stats).unwrap()).unwrap()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(prefix) = &self.file_prefix {
                let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
            }
        }
    }
}

/// One ping with a one-second wait; whether it was answered, and ping's output.
pub fn ping_once(ns: &NetNs, to: &str) -> (bool, String) {
    let out =
        Command::new("ip").args(["netns", "exec", &ns.name, "ping", "-n", "-c", "1", "-W", "1", to]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pings until one answer comes back (true) or `limit` passes (false).
pub fn ping_works(ns: &NetNs, to: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ping_once(ns, to).0 {
            return true;
        }
    }
    false
}

/// Pings until one goes unanswered (true) or `limit` passes (false): a REST change reaches the
/// workers a few milliseconds after its answer, later on a loaded machine.
pub fn ping_stops(ns: &NetNs, to: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !ping_once(ns, to).0 {
            return true;
        }
    }
    false
}
