//! Building blocks for test networks of several namespaces: namespaces without IPv6, veth pairs
//! between namespaces or into the root namespace (for DPDK's `net_af_packet`), Linux bridges,
//! packet captures with `tcpdump` and their decoding with `tshark`. Everything is removed again by
//! guards, also when a test fails: interfaces die with their namespace, the root end of a veth and
//! a capture's process with their guard.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{run, NetNs};

/// A namespace with IPv6 off, so the only traffic in it is the test's own.
pub fn namespace(name: &str) -> NetNs {
    let ns = NetNs::new(name);
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns
}

/// Turns TX checksum offload off and brings `dev` up. A veth leaves checksums to an offload that
/// never happens once the frame is read by DPDK's af_packet driver (or encapsulated on the way).
fn offload_off_and_up(ns: &NetNs, dev: &str) {
    ns.exec(&["ethtool", "-K", dev, "tx", "off"]);
    ns.exec(&["ip", "link", "set", dev, "up"]);
}

/// A veth pair `a_dev` (in `a`) <-> `b_dev` (in `b`), both up with TX checksum offload off. It is
/// deleted with either namespace.
pub fn veth_between(a: &NetNs, a_dev: &str, b: &NetNs, b_dev: &str) {
    a.exec(&["ip", "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name]);
    offload_off_and_up(a, a_dev);
    offload_off_and_up(b, b_dev);
}

/// A veth pair whose `outer` end stays in the root namespace for a DPDK `net_af_packet` port and
/// whose `inner` end is in `ns`, up, without an address. The guard deletes the outer end.
pub struct RootVeth {
    pub outer: String,
}

impl RootVeth {
    pub fn new(outer: &str, ns: &NetNs, inner: &str) -> RootVeth {
        let _ = Command::new("ip").args(["link", "del", outer]).output();
        run("ip", &["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", &ns.name]);
        let veth = RootVeth { outer: outer.to_string() };
        run("sysctl", &["-q", "-w", &format!("net.ipv6.conf.{outer}.disable_ipv6=1")]);
        run("ip", &["link", "set", outer, "up"]);
        offload_off_and_up(ns, inner);
        veth
    }
}

impl Drop for RootVeth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.outer]).output();
    }
}

/// A Linux bridge `name` in `ns` joining `members` (interfaces of `ns`), up.
pub fn bridge(ns: &NetNs, name: &str, members: &[&str]) {
    ns.exec(&["ip", "link", "add", name, "type", "bridge"]);
    for member in members {
        ns.exec(&["ip", "link", "set", member, "master", name]);
    }
    ns.exec(&["ip", "link", "set", name, "up"]);
}

/// `tcpdump` writing what `dev` in `ns` sees (matching a pcap `filter`) to a file; stopped by
/// [`Capture::finish`], killed by the guard if the test fails first.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// Starts the capture and waits until tcpdump listens.
    pub fn start(ns: &NetNs, dev: &str, filter: &str, file: &Path) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tcpdump", "-n", "-U", "-i", dev, "-w"])
            .arg(file)
            .args(filter.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump (scripts/setup.sh installs it)");
        let rx = super::stderr_lines(&mut child);
        let capture = Capture { child: Some(child), file: file.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("listening on") => return capture,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("tcpdump exited: {}", seen.join("\n")),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(Instant::now() < deadline, "tcpdump did not start listening: {}", seen.join("\n"));
        }
    }

    /// Stops tcpdump (SIGINT: it flushes the file) and waits for it.
    pub fn finish(mut self) -> PathBuf {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
            .expect("signal tcpdump");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tcpdump did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Decodes a capture with `tshark -T fields`: one row per packet, one column per field, a field
/// that occurs several times (outer and inner headers) as its values joined by ','.
pub fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let args = tshark_args(file, fields);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rows(&run("tshark", &args))
}

/// [`tshark_fields`] of a capture still being written: the packets tcpdump wrote so far (none
/// while the file is still empty; a last packet written halfway is left out, and tshark's
/// complaint about it ignored).
pub fn tshark_fields_so_far(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new("tshark").args(tshark_args(file, fields)).output().expect("run tshark");
    rows(&String::from_utf8_lossy(&out.stdout))
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().filter(|line| !line.is_empty()).map(|line| line.split('\t').map(str::to_string).collect()).collect()
}

fn tshark_args(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["-r".into(), file.to_str().unwrap().into(), "-n".into()];
    // Verify IPv4 header checksums, so a wrong one shows up as a status instead of "unverified".
    args.extend(
        ["-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"].map(String::from),
    );
    for field in fields {
        args.push("-e".into());
        args.push((*field).into());
    }
    args
}
