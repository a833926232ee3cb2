//! The appliance binary (`midogw run`) as the server under test: started on a generated config,
//! its log lines read with their arrival time (the feed's `topology published` line is the only
//! outside sign of a worker taking a new snapshot), stopped with SIGTERM for its JSON report.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::ControlError;

/// The appliance binary: `explicit`, else `midogw` beside this executable.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, ControlError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| ControlError::Setup(format!("locating this executable: {e}")))?
            .with_file_name("midogw"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ControlError::Setup(format!(
            "the appliance binary {} does not exist: build it (`cargo build --release --bin midogw`, next to \
             midogw-perf) or pass --midogw PATH (or --in-process for the REST figures only)",
            path.display()
        )))
    }
}

/// A free loopback TCP address (bound and released: another process could take it first, which
/// shows up as the appliance failing to start).
pub fn free_addr() -> Result<SocketAddr, ControlError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ControlError::Setup(format!("no free port: {e}")))?;
    l.local_addr().map_err(|e| ControlError::Setup(format!("no free port: {e}")))
}

/// One log line and when it was read.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When this process read it.
    pub at: Instant,
    /// The line, without ANSI colour codes.
    pub text: String,
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `key=value` field of a tracing line, as an integer.
pub fn field(line: &str, key: &str) -> Option<u64> {
    let pat = format!("{key}=");
    line.split_whitespace().find_map(|w| w.strip_prefix(&pat)).and_then(|v| v.parse().ok())
}

/// A running `midogw run`; killed on drop if not stopped.
pub struct Appliance {
    child: Option<Child>,
    log: Receiver<LogLine>,
    /// Every line read so far (for error messages).
    pub seen: Vec<String>,
    stats: PathBuf,
}

impl Appliance {
    /// Starts `binary run --config config --stats-json stats` and waits until `rest` accepts
    /// connections and, when given, a log line containing `ready` appeared.
    pub fn start(
        binary: &Path,
        config: &Path,
        stats: &Path,
        rest: SocketAddr,
        ready: Option<&str>,
    ) -> Result<Appliance, ControlError> {
        let mut child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .args(["--stats-interval", "0", "--stats-json"])
            .arg(stats)
            .env("MIDOGW_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ControlError::Setup(format!("starting {}: {e}", binary.display())))?;
        let stderr = child.stderr.take().expect("piped above");
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(LogLine { at: Instant::now(), text: strip_ansi(&line) }).is_err() {
                    break;
                }
            }
        });
        let mut app = Appliance { child: Some(child), log, seen: Vec::new(), stats: stats.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            app.drain();
            let logged = ready.is_none_or(|r| app.seen.iter().any(|l| l.contains(r)));
            if logged && TcpStream::connect(rest).is_ok() {
                return Ok(app);
            }
            if let Some(status) = app.child.as_mut().expect("running").try_wait().ok().flatten() {
                std::thread::sleep(Duration::from_millis(100));
                app.drain();
                app.child = None;
                return Err(app.failure(&format!("midogw exited early ({status})")));
            }
            if Instant::now() > deadline {
                return Err(app.failure("midogw did not come up within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn failure(&self, what: &str) -> ControlError {
        let tail: Vec<&str> = self.seen.iter().rev().take(30).rev().map(String::as_str).collect();
        ControlError::Process(format!("{what}; its last log lines:\n{}", tail.join("\n")))
    }

    /// Reads the lines already available.
    pub fn drain(&mut self) -> Vec<LogLine> {
        let lines: Vec<LogLine> = self.log.try_iter().collect();
        self.seen.extend(lines.iter().map(|l| l.text.clone()));
        lines
    }

    /// Waits up to `limit` for a line containing `needle`; the line, or `None` on timeout.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.text.clone());
                    if line.text.contains(needle) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// SIGTERM, wait for a clean exit, and read the `--stats-json` report (`None` when it wrote
    /// none: a REST-only appliance has no data path to report on).
    pub fn stop(mut self) -> Result<Option<serde_json::Value>, ControlError> {
        // The child stays in `self` until it exited: an early return kills and reaps it on drop.
        let child = self.child.as_mut().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| ControlError::Process(format!("SIGTERM to midogw: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let exited = child.try_wait().map_err(|e| ControlError::Process(format!("waiting for midogw: {e}")))?;
            if let Some(s) = exited {
                break s;
            }
            if Instant::now() > deadline {
                return Err(self.failure("midogw did not stop within 30 s of SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        std::thread::sleep(Duration::from_millis(50));
        self.drain();
        if !status.success() {
            return Err(self.failure(&format!("midogw exit status {status}")));
        }
        let text = match std::fs::read_to_string(&self.stats) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ControlError::Process(format!("reading {}: {e}", self.stats.display()))),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ControlError::Process(format!("{}: {e}", self.stats.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fields_parse_with_and_without_colour() {
        let plain = "2026-11-22T08:00:00.1Z  INFO midogw::feed: topology published generation=7 devices=1 us=1234";
        assert_eq!(field(plain, "us"), Some(1234));
        assert_eq!(field(plain, "generation"), Some(7));
        assert_eq!(field(plain, "missing"), None);
        let coloured = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m topology published \u{1b}[3mus\u{1b}[0m\u{1b}[2m=\u{1b}[0m99";
        let stripped = strip_ansi(coloured);
        assert_eq!(stripped, "2026  INFO topology published us=99");
        assert_eq!(field(&stripped, "us"), Some(99));
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let e = find_binary(Some(Path::new("/nonexistent/midogw"))).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/midogw") && e.contains("cargo build"), "{e}");
    }
}
