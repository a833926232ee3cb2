//! A private Open vSwitch with the userspace (`netdev`) datapath, for interoperability tests: an
//! `ovsdb-server` on a database of its own in a scratch directory (root namespace) and an
//! `ovs-vswitchd` inside a test's network namespace, where its bridges' internal ports, its routes
//! and its tunnels live. The package's system service is never used. Both daemons are children of
//! the test, stopped by PID when the guard drops (also when the test fails), before the namespace
//! goes away.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::NetNs;

/// The database schema Debian's `openvswitch-common` installs.
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A running private Open vSwitch; its daemons stop and its files go when it drops.
pub struct OvsHost {
    dir: PathBuf,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl OvsHost {
    /// Starts the daemons with their files in a fresh `dir`, `ovs-vswitchd` inside `ns`, and waits
    /// until both answer. Panics, with the daemons' logs, if either does not come up.
    pub fn start(ns: &NetNs, dir: &Path) -> OvsHost {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let mut ovs = OvsHost { dir: dir.to_path_buf(), ovsdb: None, vswitchd: None };
        let db = ovs.path("conf.db");
        ovs.tool("ovsdb-tool", &["create", db.to_str().unwrap(), SCHEMA]);
        let remote = format!("--remote=punix:{}", ovs.path("db.sock").display());
        let mut args = vec![db.display().to_string(), remote];
        args.extend(ovs.daemon_files("ovsdb-server"));
        ovs.ovsdb = Some(ovs.spawn(Command::new("ovsdb-server").args(&args), "ovsdb-server"));
        ovs.wait_for(&ovs.path("db.sock"), "ovsdb-server's socket");
        ovs.vsctl(&["--no-wait", "init"]);

        let mut args = vec!["netns".to_string(), "exec".into(), ns.name.clone(), "ovs-vswitchd".into(), ovs.db()];
        args.extend(ovs.daemon_files("ovs-vswitchd"));
        ovs.vswitchd = Some(ovs.spawn(Command::new("ip").args(&args), "ovs-vswitchd"));
        ovs.wait_for(&ovs.path("ovs-vswitchd.ctl"), "ovs-vswitchd's control socket");
        ovs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn db(&self) -> String {
        format!("unix:{}", self.path("db.sock").display())
    }

    fn daemon_files(&self, name: &str) -> Vec<String> {
        vec![
            format!("--unixctl={}", self.path(&format!("{name}.ctl")).display()),
            format!("--pidfile={}", self.path(&format!("{name}.pid")).display()),
            format!("--log-file={}", self.path(&format!("{name}.log")).display()),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ]
    }

    /// Spawns a daemon with the private run directory (bridges' management sockets go there).
    fn spawn(&self, cmd: &mut Command, what: &str) -> Child {
        cmd.env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} (scripts/setup.sh installs openvswitch-switch): {e}"))
    }

    fn wait_for(&mut self, file: &Path, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !file.exists() {
            for child in self.ovsdb.iter_mut().chain(self.vswitchd.iter_mut()) {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("Open vSwitch exited ({status}) before {what} appeared:\n{}", self.logs());
                }
            }
            assert!(Instant::now() < deadline, "no {what} within 20 s:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs an Open vSwitch tool against the private daemons; panics with its output and the
    /// daemons' logs if it fails.
    fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {} failed: {}{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ovs-vsctl`; without `--no-wait` it returns once `ovs-vswitchd` applied the change.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.db());
        let mut all = vec![db.as_str(), "--timeout=30"];
        all.extend_from_slice(args);
        self.tool("ovs-vsctl", &all)
    }

    /// `ovs-appctl` to `ovs-vswitchd`.
    pub fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.path("ovs-vswitchd.ctl");
        let mut all = vec!["-t", ctl.to_str().unwrap()];
        all.extend_from_slice(args);
        self.tool("ovs-appctl", &all)
    }

    /// `ovs-ofctl` on bridge `bridge`'s management socket.
    pub fn ofctl(&self, command: &str, bridge: &str) -> String {
        let mgmt = format!("unix:{}", self.path(&format!("{bridge}.mgmt")).display());
        self.tool("ovs-ofctl", &[command, &mgmt])
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        ["ovsdb-server.log", "ovs-vswitchd.log"]
            .iter()
            .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(self.path(f)).unwrap_or_default()))
            .collect()
    }
}

impl Drop for OvsHost {
    fn drop(&mut self) {
        // ovs-vswitchd first: it is ovsdb-server's client. `ip netns exec` execs the daemon, so
        // the child's PID is the daemon's.
        for child in [self.vswitchd.take(), self.ovsdb.take()].into_iter().flatten() {
            let mut child = child;
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
