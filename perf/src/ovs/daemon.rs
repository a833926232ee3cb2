//! Private Open vSwitch processes: an `ovsdb-server` and an `ovs-vswitchd-dpdk` with their own
//! database, sockets, pid and log files in one directory, nothing system-wide (no systemd, not
//! the package's service, not /var/run/openvswitch).
//!
//! `ovs-vswitchd` runs in a network namespace of its own (`unshare --net`): the userspace
//! datapath creates a tap device per bridge, and those vanish with the namespace when it exits.
//! Both processes are pinned to the main CPU (`taskset`); the datapath's one PMD thread polls on
//! the forwarding CPU (`pmd-cpu-mask`). `setpriv --pdeathsig` stops them if their parent dies
//! without stopping them. EAL: `--no-huge --legacy-mem -m MEMORY --file-prefix PREFIX -l MAIN
//! --no-pci` (Open vSwitch adds `--in-memory` unless the arguments name `--legacy-mem`, which
//! `--no-huge` implies anyway).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::job::OvsJob;
use crate::error::{Error, Result};

/// The DPDK build of `ovs-vswitchd` from Debian's `openvswitch-switch-dpdk`.
pub const VSWITCHD_DPDK: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
/// The Open_vSwitch database schema from `openvswitch-common`.
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// Programs the daemons and their configuration need.
const TOOLS: [&str; 10] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vsctl",
    "ovs-ofctl",
    "ovs-appctl",
    "setpriv",
    "unshare",
    "taskset",
    "nsenter",
    "ip",
];
/// Longest wait for `ovs-vswitchd` to apply a configuration step.
const STEP_TIMEOUT_S: u32 = 60;

/// How the daemons are started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsSettings {
    /// Private directory (database, sockets, pid and log files); removed on stop.
    pub dir: PathBuf,
    /// EAL `--file-prefix`.
    pub file_prefix: String,
    /// CPU of the daemons' other threads and of the EAL main lcore.
    pub main_core: u32,
    /// CPU of the PMD thread that forwards.
    pub pmd_core: u32,
    /// EAL memory (`-m`, no hugepages), MiB.
    pub memory_mib: u32,
}

impl OvsSettings {
    /// `dpdk-extra`: the EAL arguments.
    pub fn dpdk_extra(&self) -> String {
        format!(
            "--no-huge --legacy-mem -m {} --file-prefix {} -l {} --no-pci --log-level=lib.eal:notice",
            self.memory_mib, self.file_prefix, self.main_core
        )
    }

    /// The `Open_vSwitch` table's `other_config` settings.
    pub fn other_config(&self) -> Vec<String> {
        vec![
            "other_config:dpdk-init=true".into(),
            format!("other_config:dpdk-extra={}", self.dpdk_extra()),
            format!("other_config:pmd-cpu-mask={:#x}", 1u64 << self.pmd_core),
        ]
    }
}

/// Whether Open vSwitch with DPDK and the tools around it are installed; the error says how to
/// install them.
pub fn preflight() -> Result<()> {
    let mut missing: Vec<String> = TOOLS.iter().filter(|t| which(t).is_none()).map(|t| t.to_string()).collect();
    for file in [VSWITCHD_DPDK, SCHEMA] {
        if !Path::new(file).exists() {
            missing.push(file.into());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Process {
        what: "ovs-dpdk".into(),
        detail: format!(
            "Open vSwitch with DPDK is not installed (missing: {}); run scripts/setup.sh (Debian package openvswitch-switch-dpdk), or leave the peer out with --only",
            missing.join(", ")
        ),
    })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The running daemons. Dropping it stops them and removes the directory.
#[derive(Debug)]
pub struct Ovs {
    settings: OvsSettings,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl Ovs {
    /// Starts both daemons and applies `job`: DPDK options, bridges and tunnel ports, addresses,
    /// static neighbours, OpenFlow rules, then the DPDK ports (all in one step, so their devices
    /// are probed together and rules are in place before any frame arrives). An error carries
    /// the tail of `ovs-vswitchd`'s log; the daemons are stopped and the directory removed.
    pub fn start(settings: &OvsSettings, job: &OvsJob) -> Result<Ovs> {
        preflight()?;
        let dir = &settings.dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut ovs = Ovs { settings: settings.clone(), ovsdb: None, vswitchd: None };
        match ovs.configure(job) {
            Ok(()) => Ok(ovs),
            Err(e) => {
                let err = ovs.with_log_tail(e);
                ovs.stop();
                Err(err)
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.settings.dir.join(name)
    }

    fn configure(&mut self, job: &OvsJob) -> Result<()> {
        let db = self.path("conf.db");
        self.tool("ovsdb-tool", &["create".into(), db.display().to_string(), SCHEMA.into()])?;
        let core = self.settings.main_core.to_string();
        let mut args: Vec<String> =
            ["--pdeathsig", "SIGTERM", "--", "taskset", "-c", &core, "ovsdb-server"].map(String::from).to_vec();
        args.push(db.display().to_string());
        args.push(format!("--remote=punix:{}", self.path("db.sock").display()));
        args.extend(self.daemon_files("ovsdb-server"));
        self.ovsdb = Some(self.spawn("ovsdb-server", &args)?);
        let until = Instant::now() + Duration::from_secs(10);
        while !self.path("db.sock").exists() {
            self.check_alive()?;
            if Instant::now() > until {
                return Err(process_error("ovsdb-server did not open its socket within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.vsctl_no_wait(&["init".into()])?;
        let mut set = vec!["set".to_string(), "Open_vSwitch".into(), ".".into()];
        set.extend(self.settings.other_config());
        self.vsctl_no_wait(&set)?;

        let mut args: Vec<String> =
            ["--pdeathsig", "SIGTERM", "--", "unshare", "--net", "--", "taskset", "-c", &core, VSWITCHD_DPDK]
                .map(String::from)
                .to_vec();
        args.push(format!("unix:{}", self.path("db.sock").display()));
        args.extend(self.daemon_files("ovs-vswitchd"));
        self.vswitchd = Some(self.spawn("ovs-vswitchd", &args)?);

        // Without --no-wait, ovs-vsctl returns once ovs-vswitchd applied the change (DPDK
        // initialised, bridges created).
        self.vsctl(&job.bridge_args())?;
        let netns = format!("--net=/proc/{}/ns/net", self.vswitchd_pid().unwrap_or(0));
        for cmd in job.address_commands() {
            let mut args = vec![netns.clone(), "--".into()];
            args.extend(cmd);
            self.tool("nsenter", &args)?;
        }
        for cmd in job.appctl_commands() {
            self.appctl(&cmd)?;
        }
        for bridge in &job.bridges {
            let file = self.path(&format!("flows-{}.txt", bridge.name));
            std::fs::write(&file, bridge.flow_text()).map_err(|e| Error::io(&file, e))?;
            self.ofctl(&["add-flows".into(), self.mgmt(&bridge.name), file.display().to_string()])?;
        }
        let ports = job.dpdk_port_args();
        if !ports.is_empty() {
            self.vsctl(&ports)?;
        }
        for (name, ofport) in job.dpdk_ports() {
            let got = self.vsctl(&["get".into(), "Interface".into(), name.clone(), "ofport".into()])?;
            if got.trim() != ofport.to_string() {
                let why = self.vsctl(&["get".into(), "Interface".into(), name.clone(), "error".into()])?;
                return Err(process_error(&format!(
                    "port {name} was not added (ofport {}): {}",
                    got.trim(),
                    why.trim()
                )));
            }
        }
        self.check_alive()
    }

    /// Daemon options: its files in the private directory, no console logging.
    fn daemon_files(&self, name: &str) -> Vec<String> {
        vec![
            format!("--unixctl={}", self.path(&format!("{name}.ctl")).display()),
            format!("--pidfile={}", self.path(&format!("{name}.pid")).display()),
            format!("--log-file={}", self.path(&format!("{name}.log")).display()),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ]
    }

    /// The bridge's OpenFlow management socket (in the private directory, `OVS_RUNDIR`).
    pub fn mgmt(&self, bridge: &str) -> String {
        format!("unix:{}", self.path(&format!("{bridge}.mgmt")).display())
    }

    fn spawn(&self, what: &str, args: &[String]) -> Result<Child> {
        let log = self.path(&format!("{what}.out"));
        let out = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(&log, e))?;
        tracing::debug!(what, ?args, "starting");
        self.command("setpriv")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::Process { what: what.into(), detail: format!("cannot start setpriv ... {what}: {e}") })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let dir = &self.settings.dir;
        c.env("OVS_RUNDIR", dir).env("OVS_DBDIR", dir).env("OVS_LOGDIR", dir).env("OVS_SYSCONFDIR", dir);
        c
    }

    fn tool(&self, program: &str, args: &[String]) -> Result<String> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Process { what: program.into(), detail: format!("cannot run {program}: {e}") })?;
        if !out.status.success() {
            return Err(Error::Process {
                what: program.into(),
                detail: format!(
                    "`{program} {}` failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn db(&self) -> String {
        format!("--db=unix:{}", self.path("db.sock").display())
    }

    /// `ovs-vsctl`, waiting (at most a minute) until `ovs-vswitchd` applied the change.
    pub fn vsctl(&mut self, args: &[String]) -> Result<String> {
        self.check_alive()?;
        let mut all = vec![self.db(), format!("--timeout={STEP_TIMEOUT_S}")];
        all.extend(args.iter().cloned());
        let out = self.tool("ovs-vsctl", &all);
        self.check_alive()?;
        out
    }

    fn vsctl_no_wait(&self, args: &[String]) -> Result<String> {
        let mut all = vec![self.db(), "--no-wait".into()];
        all.extend(args.iter().cloned());
        self.tool("ovs-vsctl", &all)
    }

    /// `ovs-appctl` to `ovs-vswitchd`.
    pub fn appctl(&self, args: &[String]) -> Result<String> {
        let mut all = vec!["-t".to_string(), self.path("ovs-vswitchd.ctl").display().to_string()];
        all.extend(args.iter().cloned());
        self.tool("ovs-appctl", &all)
    }

    /// `ovs-ofctl`.
    pub fn ofctl(&self, args: &[String]) -> Result<String> {
        self.tool("ovs-ofctl", args)
    }

    /// The bridge's rules with their packet counters (`ovs-ofctl dump-flows`).
    pub fn dump_flows(&self, bridge: &str) -> Result<String> {
        self.ofctl(&["dump-flows".into(), self.mgmt(bridge)])
    }

    /// The interface's counters (`statistics` column: rx/tx packets, drops, errors).
    pub fn interface_statistics(&self, name: &str) -> Result<String> {
        self.vsctl_no_wait(&["get".into(), "Interface".into(), name.into(), "statistics".into()])
    }

    /// `ovs-vswitchd`'s process id.
    pub fn vswitchd_pid(&self) -> Option<u32> {
        self.vswitchd.as_ref().map(Child::id)
    }

    /// Both daemons' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.ovsdb.iter().chain(&self.vswitchd).map(Child::id).collect()
    }

    /// An error if either daemon has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for (what, child) in [("ovsdb-server", &mut self.ovsdb), ("ovs-vswitchd", &mut self.vswitchd)] {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    let detail = format!("{what} exited ({status})");
                    return Err(process_error(&detail));
                }
            }
        }
        Ok(())
    }

    /// Waits until the PMD thread has started polling (it gained CPU time).
    pub fn wait_polling(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut last = None;
        loop {
            self.check_alive()?;
            let now = self.vswitchd_pid().and_then(pmd_cpu_ticks);
            if let (Some(a), Some(b)) = (last, now) {
                if b > a {
                    return Ok(());
                }
            }
            last = now;
            if started.elapsed() > timeout {
                return Err(process_error(&format!("no PMD thread polled within {} s", timeout.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of `ovs-vswitchd`'s log and console output.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        for file in ["ovs-vswitchd.log", "ovs-vswitchd.out", "ovsdb-server.out"] {
            let body = std::fs::read_to_string(self.path(file)).unwrap_or_default();
            let tail: Vec<&str> = body.lines().filter(|l| !l.contains("|coverage|")).collect();
            if tail.is_empty() {
                continue;
            }
            text += &format!("--- {file}\n{}\n", tail[tail.len().saturating_sub(lines)..].join("\n"));
        }
        text
    }

    /// `e` with the tail of Open vSwitch's logs appended.
    pub fn with_log_tail(&self, e: Error) -> Error {
        let detail = match &e {
            Error::Process { what, detail } if what == "ovs-dpdk" => detail.clone(),
            other => other.to_string(),
        };
        process_error(&format!("{detail}\n{}", self.log_tail(15)))
    }

    /// Stops both daemons (SIGTERM, then SIGKILL after 10 s), removes DPDK's runtime directory
    /// and the private directory. Idempotent.
    pub fn stop(&mut self) {
        for (what, child) in [("ovs-vswitchd", self.vswitchd.take()), ("ovsdb-server", self.ovsdb.take())] {
            let Some(mut child) = child else { continue };
            if child.try_wait().ok().flatten().is_none() {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let until = Instant::now() + Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if child.try_wait().ok().flatten().is_none() {
                    tracing::warn!(what, "did not stop on SIGTERM; killing it");
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        crate::runner::remove_runtime_dir(&self.settings.file_prefix);
        let _ = std::fs::remove_dir_all(&self.settings.dir);
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.stop();
    }
}

fn process_error(detail: &str) -> Error {
    Error::Process { what: "ovs-dpdk".into(), detail: detail.into() }
}

/// CPU ticks of the process's PMD threads (`pmd-c01/id:8`), if it has any.
pub fn pmd_cpu_ticks(pid: u32) -> Option<u64> {
    crate::runner::threads_cpu_ticks([pid], |comm| comm.starts_with("pmd-c"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpdk_options_match_the_other_devices() {
        let s = OvsSettings {
            dir: "/tmp/x".into(),
            file_prefix: "mgwperf-1-2-dut".into(),
            main_core: 0,
            pmd_core: 1,
            memory_mib: 512,
        };
        assert_eq!(
            s.other_config(),
            [
                "other_config:dpdk-init=true",
                "other_config:dpdk-extra=--no-huge --legacy-mem -m 512 --file-prefix mgwperf-1-2-dut -l 0 --no-pci --log-level=lib.eal:notice",
                "other_config:pmd-cpu-mask=0x2",
            ]
        );
        let s = OvsSettings { pmd_core: 5, main_core: 2, ..s };
        assert!(s.other_config()[2].ends_with("=0x20"));
        assert!(s.dpdk_extra().contains(" -l 2 "));
    }
}
