//! A standalone ZooKeeper server for the appliance tests (the Debian `zookeeper` package's jar, run
//! by java in a private directory on a free port, killed by PID on drop), as control/tests/zookeeper.rs
//! runs it for the store's own tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

pub struct ZkServer {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl ZkServer {
    /// Starts a server and waits until it serves; panics naming scripts/setup.sh without the package.
    pub fn start(tag: &str) -> ZkServer {
        assert!(
            Path::new(ZOOKEEPER_JAR).exists(),
            "{ZOOKEEPER_JAR} is missing: install the Debian package `zookeeper` with scripts/setup.sh"
        );
        let dir = std::env::temp_dir().join(format!("midogw-zkserver-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             minSessionTimeout=1000\nmaxSessionTimeout=20000\n4lw.commands.whitelist=srvr\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), config).unwrap();
        let mut server = ZkServer { dir, port, child: None };
        server.launch();
        server
    }

    /// `host:port` for `[store] hosts`.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts, on the same data directory and port) the server and waits until it serves.
    pub fn launch(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let child = Command::new("java")
            .args(["-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", ZOOKEEPER_JAR])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("java (a dependency of the zookeeper package) must be installed: scripts/setup.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.serving() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!("zookeeper did not start on port {} within 30 s; its output:\n{log}", self.port);
    }

    fn serving(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut reply = String::new();
        conn.write_all(b"srvr").is_ok() && conn.read_to_string(&mut reply).is_ok() && reply.contains("Mode:")
    }

    /// Kills the server by PID.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().filter(|l| !l.trim_start().starts_with("at ")).collect();
            eprintln!(
                "--- zookeeper server log (last lines) ---\n{}",
                tail[tail.len().saturating_sub(30)..].join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
