//! The appliance's config file (TOML): EAL options, the mbuf pool, the ports and the worker cores.
//!
//! Parsing is two passes. serde reads the file into spanned raw values (a syntax error, a wrong
//! type or an unknown key stops it, with its location); then every semantic check runs against the
//! raw values and the facts of this machine, so an operator sees every problem at once, each with
//! the line and column of the value to fix. Nothing here touches DPDK: `midogw check-config` and
//! the tests run it anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use midogw::sizing;
use serde::Deserialize;
use toml::Spanned;

/// EAL `--file-prefix` when the file sets none: keeps midogw's runtime files apart from other
/// DPDK applications on the box.
pub const DEFAULT_FILE_PREFIX: &str = "midogw";
/// MTU of a port that sets none.
pub const DEFAULT_MTU: u16 = 1500;
/// Port names may also name Linux interfaces, so they obey IFNAMSIZ - 1.
pub const MAX_PORT_NAME: usize = 15;
/// Most RX queues a port may be given.
pub const MAX_QUEUES: u16 = 16;
/// Smallest pool that can fill one RX ring and still hand out a burst.
pub const MIN_MBUFS: u32 = 1023;
/// Memory EAL takes with `--no-huge` and no `-m`.
const NO_HUGE_DEFAULT_MIB: u64 = 64;
const MIB: u64 = 1 << 20;
/// Page size assumed when telling an operator how many hugepages to add (the x86 default).
const HUGEPAGE_HINT_BYTES: u64 = 2 << 20;

/// The validated config: every default resolved, every value in range, every device present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: Eal,
    /// Mbufs in the jumbo pool: `[mempool] mbufs`, or the size every ring and cache needs.
    pub mempool_mbufs: u32,
    /// In config order: ports 2k and 2k+1 are cross-connected.
    pub ports: Vec<Port>,
    /// Lcore ids of the workers, in config order.
    pub workers: Vec<u32>,
    /// `[topology]`: where the workers' topology comes from (cross-connect without it).
    pub topology: TopologySource,
    /// `[rest]`: where the REST API listens.
    pub rest: Rest,
    /// `[store]`: where the topology is kept.
    pub store: StoreConfig,
    /// `[auth]`: who may log in to the REST API.
    pub auth: Auth,
    /// `[host]`: this gateway's identity as a MidoNet Host.
    pub host: HostConfig,
    /// `[underlay]`: this gateway's tunnel endpoint, with `[topology] source = "store"`.
    pub underlay: Option<UnderlayConfig>,
    /// `[flows]`: each pipeline worker's flow cache.
    pub flows: FlowsConfig,
    /// `[icmp]`: how fast each pipeline worker may send ICMP errors.
    pub icmp: IcmpConfig,
    /// `[neighbours]`: each pipeline worker's ARP / NDP cache and resolution queue.
    pub neighbours: NeighboursConfig,
    /// `[metrics] listen`: where Prometheus scrapes `GET /metrics` (off when unset).
    pub metrics: Option<SocketAddr>,
}

/// `[neighbours]`: the per-worker neighbour cache (ARP / NDP) and the queue of packets waiting
/// for a next hop's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighboursConfig {
    /// `per_worker`: entries each worker's cache holds.
    pub per_worker: usize,
    /// `lifetime_s`: how long a learned neighbour stays valid (polled, while in use, over its
    /// last quarter); also the longest a cached flow keeps the next hop's MAC.
    pub lifetime: std::time::Duration,
    /// `hold_packets`: packets each worker keeps while their next hop is resolved.
    pub hold_packets: usize,
    /// `hold_timeout_ms`: how long a held packet waits for the answer.
    pub hold_timeout: std::time::Duration,
    /// `resolution_interval_ms`: the least time between two requests for one next hop.
    pub resolution_interval: std::time::Duration,
    /// `requests_per_s`: ARP requests / neighbour solicitations for new destinations each worker
    /// sends a second, all router ports together (RFC 6583 section 6: a scan of a subnet is not
    /// answered by a flood of requests). The underlay's next hop and the polls of neighbours in
    /// use are not counted.
    pub requests_per_s: u32,
    /// `request_burst`: how many of those may go at once after a quiet spell.
    pub request_burst: u32,
}

impl Default for NeighboursConfig {
    fn default() -> Self {
        NeighboursConfig {
            per_worker: 4096,
            lifetime: std::time::Duration::from_secs(60),
            hold_packets: 64,
            // Three requests a resolution interval apart (Linux's mcast_solicit = 3, retrans_time
            // = 1 s): a single lost ARP request or solicitation does not fail a next hop.
            hold_timeout: std::time::Duration::from_secs(3),
            resolution_interval: std::time::Duration::from_secs(1),
            requests_per_s: midogw::flowtable::sim::DEFAULT_REQUESTS_PER_SEC,
            request_burst: midogw::flowtable::sim::DEFAULT_REQUEST_BURST,
        }
    }
}

/// `[icmp]`: the rate limit on the ICMP errors each pipeline worker originates (RFC 1812
/// 4.3.2.8, RFC 4443 2.4 f): a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpConfig {
    /// `errors_per_s`: the sustained rate.
    pub errors_per_s: u32,
    /// `error_burst`: how many may go at once after a quiet spell.
    pub error_burst: u32,
}

impl Default for IcmpConfig {
    /// Linux's defaults (`net.ipv4.icmp_msgs_per_sec`, `icmp_msgs_burst`).
    fn default() -> Self {
        IcmpConfig { errors_per_s: 1000, error_burst: 50 }
    }
}

/// `[flows]`: the per-worker flow cache of the gateway pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowsConfig {
    /// `per_worker`: flows each worker's cache holds (about 204 bytes each, allocated at start).
    pub per_worker: usize,
    /// `idle_timeout_s`: a flow not hit for this long expires.
    pub idle_timeout: std::time::Duration,
}

/// Flows per worker when `[flows]` does not say.
pub const DEFAULT_FLOWS_PER_WORKER: usize = 1 << 16;
/// The largest `[flows] per_worker`: 16 Mi flows, about 3.2 GiB per worker.
pub const MAX_FLOWS_PER_WORKER: usize = 1 << 24;

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig { per_worker: DEFAULT_FLOWS_PER_WORKER, idle_timeout: std::time::Duration::from_secs(60) }
    }
}

/// `[underlay]`: where tunnels to compute hosts leave and arrive (a topology file has its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayConfig {
    /// `port`: the `[[port]]` facing the underlay (bound to no virtual port).
    pub port: String,
    /// `address`: the gateway's tunnel endpoint with its subnet, e.g. 192.168.7.1/24.
    pub address: std::net::Ipv4Addr,
    /// Prefix length of `address`.
    pub prefix_len: u8,
    /// `gateway`: the underlay router for hosts outside the subnet.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// `vxlan_port`: VXLAN's UDP destination port, default 4789.
    pub vxlan_port: u16,
}

/// `[host]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostConfig {
    /// `id`: the Host UUID; generated and kept beside the store when absent.
    pub id: Option<uuid::Uuid>,
    /// `name`: the Host name; the kernel's host name when absent.
    pub name: Option<String>,
}

/// Where the gateway pipeline's topology comes from (`[topology]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TopologySource {
    /// No `[topology]`: ports are cross-connected in pairs (bring-up and benchmarks).
    #[default]
    CrossConnect,
    /// `[topology] file = PATH` (relative paths are relative to the config file's directory): a
    /// static topology file, loaded at start.
    File(PathBuf),
    /// `[topology] source = "store"`: compiled from the store (what the REST API edits) and
    /// recompiled on every change while running.
    Store,
}

/// `[rest] listen` when the file sets none.
pub const DEFAULT_REST_LISTEN: &str = "0.0.0.0:8181";
/// `[store] path` when the file sets none.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/midogw/store.redb";

/// `[rest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rest {
    pub listen: SocketAddr,
    /// `[rest.https]`: the API over TLS as well, when set.
    pub https: Option<Https>,
}

/// `[rest.https]`: a second listener serving the same API over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Https {
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first; relative paths are resolved against the config file's
    /// directory at parse time (the file is read and checked then).
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1), resolved like `cert`.
    pub key: PathBuf,
}

/// `[store]`: the embedded store (the default) or ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The redb file as written (relative paths are relative to the config file's directory). With
    /// ZooKeeper, only its directory is used: it keeps the generated `host_id`.
    pub path: PathBuf,
    /// `kind = "zookeeper"`: where the shared store is.
    pub zookeeper: Option<ZookeeperSettings>,
}

/// `[store] kind = "zookeeper"` settings (docs/zookeeper.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperSettings {
    /// `hosts`: `host:port,host:port,...`.
    pub hosts: String,
    /// `root`: empty, or an absolute path without a trailing `/`.
    pub root: String,
    /// `session_timeout_ms`, default 30000.
    pub session_timeout: std::time::Duration,
    /// `operation_timeout_ms`, default 5000.
    pub operation_timeout: std::time::Duration,
    /// `change_retention`, default 10000.
    pub change_retention: u64,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Accounts from `[[auth.account]]`.
    Local(Vec<Account>),
    /// Anyone logs in as admin: for tests only.
    Mock,
}

/// One `[[auth.account]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    /// Argon2 PHC string (`midogw hash-password`).
    pub password_hash: String,
    pub tenant: String,
    pub admin: bool,
}

/// EAL settings; midogw adds the lcore, file-prefix and device options itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eal {
    /// Extra EAL arguments, passed through verbatim.
    pub args: Vec<String>,
    /// Lcore of the control thread.
    pub main_core: u32,
    pub file_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// As written in the file: what EAL is given (`-a` or `--vdev`).
    pub devargs: String,
    pub device: Device,
    pub mtu: u16,
    /// RX queues; TX queues are one per worker.
    pub queues: u16,
}

/// What a port's devargs name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A physical NIC, allow-listed with `-a`.
    Pci {
        /// Normalised `dddd:bb:dd.f`, lowercase: the form sysfs and DPDK use.
        address: String,
    },
    /// A DPDK virtual device, created with `--vdev`.
    Vdev {
        /// Driver plus instance, e.g. `net_af_packet0`.
        name: String,
        /// e.g. `net_af_packet`.
        driver: String,
        /// The `,key=value` pairs in order.
        args: Vec<(String, String)>,
    },
}

impl Device {
    /// The ethdev name DPDK gives the port, which is how the port is found after probing.
    pub fn dpdk_name(&self) -> &str {
        match self {
            Device::Pci { address } => address,
            Device::Vdev { name, .. } => name,
        }
    }

    /// The value of a vdev argument; `None` for PCI devices.
    pub fn arg(&self, key: &str) -> Option<&str> {
        match self {
            Device::Pci { .. } => None,
            Device::Vdev { args, .. } => args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()),
        }
    }
}

/// One thing wrong with the file, at a 1-based line and column (0:0 when the file is unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Everything wrong with one config file, in file order; displayed one `PATH:LINE:COL: message`
/// per line, the form editors and CI logs link to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .list))]
pub struct Problems {
    pub path: String,
    pub list: Vec<Problem>,
}

fn render(path: &str, list: &[Problem]) -> String {
    list.iter().map(|p| format!("{path}:{p}")).collect::<Vec<_>>().join("\n")
}

/// What the checks need to know about the machine, gathered once so the checks stay pure and
/// testable with made-up facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemFacts {
    pub online_cpus: Vec<u32>,
    pub hugepage_free_bytes: u64,
    /// `dddd:bb:dd.f` names from /sys/bus/pci/devices.
    pub pci_devices: BTreeSet<String>,
    /// Kernel network interfaces (/sys/class/net).
    pub net_interfaces: BTreeSet<String>,
    /// Poll-mode drivers of the installed DPDK, e.g. `net_af_packet`; `None` when the plugin
    /// directory cannot be found, which skips the driver check rather than failing every vdev.
    pub dpdk_drivers: Option<BTreeSet<String>>,
}

impl SystemFacts {
    /// Reads the facts from sysfs, procfs and the DPDK plugin directory. Missing sources give
    /// empty facts, which then show up as problems naming what was not found.
    pub fn probe() -> SystemFacts {
        let online_cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(&s))
            .unwrap_or_else(|| {
                // No sysfs (odd containers): assume CPUs 0..n so a sane config still passes.
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                (0..u32::try_from(n).unwrap_or(1)).collect()
            });
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let hugepage_free_bytes =
            mounted_hugepage_free_bytes(&hugepage_pools(Path::new("/sys/kernel/mm/hugepages")), &mounts, &meminfo);
        SystemFacts {
            online_cpus,
            hugepage_free_bytes,
            pci_devices: dir_names(Path::new("/sys/bus/pci/devices")),
            net_interfaces: dir_names(Path::new("/sys/class/net")),
            dpdk_drivers: probe_dpdk_drivers(),
        }
    }
}

/// Parses `0-3,6,8-9` (the kernel's CPU list format).
fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Every hugepage size the kernel has, with its free pages: (page KiB, free pages) from
/// `DIR/hugepages-<KiB>kB/free_hugepages` (/sys/kernel/mm/hugepages).
fn hugepage_pools(dir: &Path) -> Vec<(u64, u64)> {
    dir_names(dir)
        .iter()
        .filter_map(|name| {
            let kib = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            let free = std::fs::read_to_string(dir.join(name).join("free_hugepages")).ok()?.trim().parse().ok()?;
            Some((kib, free))
        })
        .collect()
}

/// The free hugepage memory DPDK can use: the free pages of every size some hugetlbfs is mounted
/// for (its `pagesize=` option, else the default size), so that 1 GiB pages count as well as the
/// default 2 MiB ones; with no hugetlbfs mounted, the default size's free pages (/proc/meminfo),
/// and the check's hint says to mount one.
fn mounted_hugepage_free_bytes(pools: &[(u64, u64)], mounts: &str, meminfo: &str) -> u64 {
    let default_kib = meminfo_field(meminfo, "Hugepagesize").unwrap_or(0);
    let mounted: BTreeSet<u64> = mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"hugetlbfs")).then(|| {
                let options = fields.get(3).copied().unwrap_or("");
                options.split(',').find_map(|o| o.strip_prefix("pagesize=")).and_then(size_kib).unwrap_or(default_kib)
            })
        })
        .collect();
    if mounted.is_empty() || pools.is_empty() {
        return hugepage_free_bytes(meminfo);
    }
    pools
        .iter()
        .filter(|(kib, _)| mounted.contains(kib))
        .map(|&(kib, free)| free.saturating_mul(kib).saturating_mul(1024))
        .fold(0, u64::saturating_add)
}

/// A hugetlbfs `pagesize=` value (`2M`, `1G`, `2048k`, or bytes) in KiB.
fn size_kib(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().ok()?;
    match unit.to_ascii_uppercase().as_str() {
        "" => Some(n / 1024),
        "K" => Some(n),
        "M" => n.checked_mul(1024),
        "G" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// A `NAME: value` field of /proc/meminfo.
fn meminfo_field(meminfo: &str, name: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse::<u64>().ok()
    })
}

/// `HugePages_Free` times `Hugepagesize` from /proc/meminfo.
fn hugepage_free_bytes(meminfo: &str) -> u64 {
    let pages = meminfo_field(meminfo, "HugePages_Free").unwrap_or(0);
    let page_kib = meminfo_field(meminfo, "Hugepagesize").unwrap_or(0);
    pages.saturating_mul(page_kib).saturating_mul(1024)
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Distribution DPDK's libdir when pkg-config is not installed (the gateway image).
const FALLBACK_LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

/// Driver names from `librte_net_*.so` under `<libdir>/dpdk/pmds-*/`.
fn probe_dpdk_drivers() -> Option<BTreeSet<String>> {
    let pkg_libdir = Command::new("pkg-config")
        .args(["--variable=libdir", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    let candidates = pkg_libdir.into_iter().chain([FALLBACK_LIBDIR.to_string()]);
    for libdir in candidates {
        let dpdk_dir = Path::new(&libdir).join("dpdk");
        let Ok(entries) = std::fs::read_dir(&dpdk_dir) else {
            continue;
        };
        let pmd_dirs: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("pmds-"))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        if pmd_dirs.is_empty() {
            continue;
        }
        let mut drivers = BTreeSet::new();
        for dir in pmd_dirs {
            for file in dir_names(&dir) {
                if let Some(lib) =
                    file.strip_prefix("librte_net_").and_then(|rest| rest.split_once(".so")).map(|(lib, _)| lib)
                {
                    drivers.extend(drivers_of_library(lib));
                }
            }
        }
        tracing::debug!(dir = %dpdk_dir.display(), count = drivers.len(), "found DPDK net drivers");
        return Some(drivers);
    }
    tracing::debug!("no DPDK plugin directory found; not checking vdev driver names");
    None
}

/// The driver names a `librte_net_<lib>.so` registers: mostly `net_<lib>`, with a few libraries
/// whose drivers are named differently.
fn drivers_of_library(lib: &str) -> Vec<String> {
    match lib {
        "bond" => vec!["net_bonding".into()],
        "tap" => vec!["net_tap".into(), "net_tun".into()],
        "virtio" => vec!["net_virtio".into(), "net_virtio_user".into()],
        _ => vec![format!("net_{lib}")],
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path, facts: &SystemFacts) -> Result<Config, Problems> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&shown, &text, facts),
        Err(e) => Err(Problems {
            path: shown,
            list: vec![Problem { line: 0, column: 0, message: format!("cannot read the config file: {e}") }],
        }),
    }
}

/// Parses and checks `text`; `path_for_messages` only labels the problems.
pub fn parse(path_for_messages: &str, text: &str, facts: &SystemFacts) -> Result<Config, Problems> {
    let fail = |list| Problems { path: path_for_messages.to_string(), list };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().trim_end().to_string();
            if line_of(text, span.start).trim_start().starts_with("[port]") {
                message.push_str("; each port is an array entry: write [[port]] (two brackets)");
            }
            return Err(fail(vec![Checker::new(text).problem(span, message)]));
        }
    };
    let mut checker = Checker::new(text);
    checker.dir = Path::new(path_for_messages).parent().map(Path::to_path_buf).unwrap_or_default();
    let config = checker.check(&raw, facts);
    if checker.problems.is_empty() {
        Ok(config)
    } else {
        let mut list = checker.problems;
        list.sort_by_key(|p| (p.line, p.column));
        Err(fail(list))
    }
}

// ---- the file as serde sees it -------------------------------------------------------------
//
// Numbers are i64 and required keys are Option so that out-of-range values and missing keys are
// semantic problems reported together with all the others, not a serde error that hides the rest.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    eal: Option<Spanned<RawEal>>,
    mempool: Option<Spanned<RawMempool>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    workers: Option<Spanned<RawWorkers>>,
    topology: Option<Spanned<RawTopology>>,
    rest: Option<Spanned<RawRest>>,
    store: Option<Spanned<RawStore>>,
    auth: Option<Spanned<RawAuth>>,
    host: Option<Spanned<RawHost>>,
    underlay: Option<Spanned<RawUnderlay>>,
    flows: Option<Spanned<RawFlows>>,
    icmp: Option<Spanned<RawIcmp>>,
    neighbours: Option<Spanned<RawNeighbours>>,
    metrics: Option<Spanned<RawMetrics>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbours {
    per_worker: Option<Spanned<i64>>,
    lifetime_s: Option<Spanned<i64>>,
    hold_packets: Option<Spanned<i64>>,
    hold_timeout_ms: Option<Spanned<i64>>,
    resolution_interval_ms: Option<Spanned<i64>>,
    requests_per_s: Option<Spanned<i64>>,
    request_burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIcmp {
    errors_per_s: Option<Spanned<i64>>,
    error_burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlows {
    per_worker: Option<Spanned<i64>>,
    idle_timeout_s: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnderlay {
    port: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    vxlan_port: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    id: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRest {
    listen: Option<Spanned<String>>,
    https: Option<Spanned<RawHttps>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    listen: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    hosts: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    session_timeout_ms: Option<Spanned<i64>>,
    operation_timeout_ms: Option<Spanned<i64>>,
    change_retention: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    provider: Option<Spanned<String>>,
    #[serde(default)]
    account: Vec<Spanned<RawAccount>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    user: Option<Spanned<String>>,
    password_hash: Option<Spanned<String>>,
    tenant: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    source: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    args: Vec<Spanned<String>>,
    main_core: Option<Spanned<i64>>,
    file_prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMempool {
    mbufs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Option<Spanned<String>>,
    devargs: Option<Spanned<String>>,
    mtu: Option<Spanned<i64>>,
    queues: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    cores: Option<Spanned<Vec<Spanned<i64>>>>,
}

// ---- semantic checks -----------------------------------------------------------------------

/// EAL options midogw derives from the config, and the key that sets each instead.
const MANAGED_EAL_OPTIONS: &[(&str, &str)] = &[
    ("-l", "[workers] cores and [eal] main_core"),
    ("-c", "[workers] cores and [eal] main_core"),
    ("--lcores", "[workers] cores and [eal] main_core"),
    ("--main-lcore", "[eal] main_core"),
    ("--master-lcore", "[eal] main_core"),
    ("--file-prefix", "[eal] file_prefix"),
    ("-a", "[[port]] devargs"),
    ("--allow", "[[port]] devargs"),
    ("-w", "[[port]] devargs"),
    ("--pci-whitelist", "[[port]] devargs"),
    ("-b", "[[port]] devargs"),
    ("--block", "[[port]] devargs"),
    ("--pci-blacklist", "[[port]] devargs"),
    ("--vdev", "[[port]] devargs"),
    ("--no-pci", "[[port]] devargs (midogw allow-lists exactly the PCI ports configured)"),
];

const DEVARGS_FORMS: &str = "use a PCI address such as \"0000:03:00.0\" (or \"03:00.0\"), or a \
     DPDK virtual device such as \"net_af_packet0,iface=veth0\", \"net_ring0\" or \
     \"net_tap0,iface=tap0\" (driver, instance number, then optional ,key=value pairs)";

/// Vdev drivers that attach to an existing kernel interface named by these arguments.
const KERNEL_IFACE_DRIVERS: &[(&str, &[&str], bool)] = &[
    // (driver, interface arguments, iface= required)
    ("net_af_packet", &["iface"], true),
    ("net_af_xdp", &["iface"], true),
    ("net_pcap", &["iface", "rx_iface", "rx_iface_in", "tx_iface"], false),
];

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// The config file's directory: relative paths of files read at check time start here.
    dir: PathBuf,
}

/// A port as far as it could be resolved, with the spans later checks point at.
struct PortDraft {
    label: String,
    header: Range<usize>,
    device: Option<Device>,
}

impl<'a> Checker<'a> {
    fn new(text: &'a str) -> Self {
        Checker { text, problems: Vec::new(), dir: PathBuf::new() }
    }

    fn problem(&self, span: Range<usize>, message: String) -> Problem {
        let (line, column) = line_column(self.text, span.start);
        Problem { line, column, message }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = self.problem(span, message.into());
        self.problems.push(problem);
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }

    /// The span of `part` inside a string value, when the value is written without escapes so
    /// that offsets match; otherwise the whole value.
    fn inner_span(&self, value: &Spanned<String>, part: Range<usize>) -> Range<usize> {
        let span = value.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
        let quote = raw.chars().next().unwrap_or('"');
        let plain = raw.len() == value.as_ref().len() + 2
            && (quote == '"' || quote == '\'')
            && raw.get(1..raw.len() - 1) == Some(value.as_ref().as_str());
        if plain {
            span.start + 1 + part.start..span.start + 1 + part.end
        } else {
            span
        }
    }

    fn check(&mut self, raw: &RawFile, facts: &SystemFacts) -> Config {
        let default_eal = RawEal::default();
        let raw_eal = raw.eal.as_ref().map_or(&default_eal, |e| e.get_ref());
        let online = format_cpu_list(&facts.online_cpus);

        let main_core = match &raw_eal.main_core {
            None => Some(0),
            Some(v) => self.cpu(v, "[eal] main_core"),
        };
        if let Some(core) = main_core.filter(|c| !facts.online_cpus.contains(c)) {
            let span = raw_eal
                .main_core
                .as_ref()
                .map(|v| v.span())
                .or_else(|| raw.eal.as_ref().map(|e| e.span()))
                .unwrap_or(0..0);
            let default = if raw_eal.main_core.is_none() { " (the default)" } else { "" };
            self.error(
                span,
                format!(
                    "main_core {core}{default} is not an online CPU (online CPUs: {online}): set \
                     [eal] main_core to one of them"
                ),
            );
        }

        let file_prefix = match &raw_eal.file_prefix {
            None => DEFAULT_FILE_PREFIX.to_string(),
            Some(p) => {
                self.check_file_prefix(p);
                p.get_ref().clone()
            }
        };

        for arg in &raw_eal.args {
            self.check_managed_arg(arg);
        }

        // Without ports the appliance runs only its control plane and never starts EAL: workers
        // and EAL memory are then not needed (a new box is provisioned over REST).
        let control_plane_only = raw.port.is_empty();
        let workers = if control_plane_only && raw.workers.is_none() {
            Vec::new()
        } else {
            self.check_workers(raw.workers.as_ref(), main_core, facts, &online)
        };
        let worker_count = u32::try_from(workers.len()).unwrap_or(u32::MAX);

        let mut ports = Vec::new();
        let mut drafts = Vec::new();
        for (index, raw_port) in raw.port.iter().enumerate() {
            let (port, draft) = self.check_port(index, raw_port, worker_count, facts);
            ports.push(port);
            drafts.push(draft);
        }
        self.check_duplicate_names(&raw.port);
        self.check_duplicate_devices(&raw.port, &drafts);
        let topology = match raw.topology.as_ref() {
            None => TopologySource::CrossConnect,
            Some(t) => self.check_topology(t),
        };
        // With a topology the pipeline decides where frames go: no pairing needed.
        if drafts.len() % 2 == 1 && raw.topology.is_none() {
            if let Some(last) = drafts.last() {
                self.error(
                    last.header.clone(),
                    format!(
                        "{} has no cross-connect partner: ports are paired in config order \
                         (0<->1, 2<->3, ...), so give it a partner [[port]] after it or remove it",
                        last.label
                    ),
                );
            }
        }

        let total_rx: u32 = ports.iter().map(|p: &Port| u32::from(p.queues)).sum();
        let total_tx = u32::try_from(ports.len()).unwrap_or(u32::MAX).saturating_mul(worker_count);
        let default_mbufs = sizing::default_mbufs(total_rx, total_tx, worker_count);
        let raw_mbufs = raw.mempool.as_ref().and_then(|m| m.get_ref().mbufs.as_ref());
        let mbufs = match raw_mbufs {
            None => default_mbufs,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(n) if n >= MIN_MBUFS => n,
                Ok(_) => {
                    self.error(
                        v.span(),
                        format!(
                            "mbufs = {} is too small to fill the descriptor rings: use at least \
                             {MIN_MBUFS}, or remove the key for the computed size ({default_mbufs} \
                             for these ports and workers)",
                            v.get_ref()
                        ),
                    );
                    default_mbufs
                }
                Err(_) => {
                    self.error(
                        v.span(),
                        format!(
                            "mbufs = {} is out of range: use {MIN_MBUFS}..={}, or remove the key \
                             for the computed size ({default_mbufs} for these ports and workers)",
                            v.get_ref(),
                            u32::MAX
                        ),
                    );
                    default_mbufs
                }
            },
        };
        // Where a memory shortfall is reported when no EAL argument is to blame.
        let memory_anchor = raw_mbufs
            .map(|v| v.span())
            .or_else(|| raw.eal.as_ref().map(|e| e.span()))
            .or_else(|| raw.mempool.as_ref().map(|m| m.span()))
            .unwrap_or(0..0);
        if !control_plane_only {
            self.check_memory(&raw_eal.args, mbufs, memory_anchor, facts);
        }

        let port_names: Vec<String> = ports.iter().map(|p: &Port| p.name.clone()).collect();
        let rest = self.check_rest(raw.rest.as_ref());
        let metrics = self.check_metrics(raw.metrics.as_ref(), &rest);
        Config {
            eal: Eal {
                args: raw_eal.args.iter().map(|a| a.get_ref().clone()).collect(),
                main_core: main_core.unwrap_or(0),
                file_prefix,
            },
            mempool_mbufs: mbufs,
            ports,
            workers,
            rest,
            metrics,
            store: self.check_store(raw.store.as_ref()),
            auth: self.check_auth(raw.auth.as_ref()),
            host: self.check_host(raw.host.as_ref()),
            underlay: self.check_underlay(raw.underlay.as_ref(), &topology, &port_names),
            flows: self.check_flows(raw.flows.as_ref()),
            icmp: self.check_icmp(raw.icmp.as_ref()),
            neighbours: self.check_neighbours(raw.neighbours.as_ref()),
            topology,
        }
    }

    fn check_flows(&mut self, raw: Option<&Spanned<RawFlows>>) -> FlowsConfig {
        let mut flows = FlowsConfig::default();
        let Some(raw) = raw.map(|r| r.get_ref()) else { return flows };
        if let Some(n) = &raw.per_worker {
            match usize::try_from(*n.get_ref()) {
                Ok(v) if (1..=MAX_FLOWS_PER_WORKER).contains(&v) => flows.per_worker = v,
                _ => self.error(
                    n.span(),
                    format!(
                        "[flows] per_worker {} must be 1 to {MAX_FLOWS_PER_WORKER} (about 204 bytes each)",
                        n.get_ref()
                    ),
                ),
            }
        }
        if let Some(v) = self.count("flows", "idle_timeout_s", raw.idle_timeout_s.as_ref(), 86_400) {
            flows.idle_timeout = std::time::Duration::from_secs(v);
        }
        flows
    }

    /// The value of `[section] key` when it is 1 to `max` (which fits the field it goes to);
    /// otherwise the problem is reported at the value. `None` when absent or refused: the
    /// default stays.
    fn count(&mut self, section: &str, key: &str, value: Option<&Spanned<i64>>, max: u64) -> Option<u64> {
        let v = value?;
        match u64::try_from(*v.get_ref()) {
            Ok(x) if (1..=max).contains(&x) => Some(x),
            _ => {
                self.error(v.span(), format!("[{section}] {key} {} must be 1 to {max}", v.get_ref()));
                None
            }
        }
    }

    fn check_icmp(&mut self, raw: Option<&Spanned<RawIcmp>>) -> IcmpConfig {
        let mut icmp = IcmpConfig::default();
        let Some(raw) = raw.map(|r| r.get_ref()) else { return icmp };
        if let Some(v) = self.count("icmp", "errors_per_s", raw.errors_per_s.as_ref(), 1_000_000) {
            icmp.errors_per_s = v as u32;
        }
        if let Some(v) = self.count("icmp", "error_burst", raw.error_burst.as_ref(), 100_000) {
            icmp.error_burst = v as u32;
        }
        icmp
    }

    fn check_neighbours(&mut self, raw: Option<&Spanned<RawNeighbours>>) -> NeighboursConfig {
        let mut n = NeighboursConfig::default();
        let Some(raw) = raw.map(|r| r.get_ref()) else { return n };
        if let Some(v) = self.count("neighbours", "per_worker", raw.per_worker.as_ref(), 1 << 20) {
            n.per_worker = v as usize;
        }
        if let Some(v) = self.count("neighbours", "lifetime_s", raw.lifetime_s.as_ref(), 86_400) {
            n.lifetime = std::time::Duration::from_secs(v);
        }
        if let Some(v) = self.count("neighbours", "hold_packets", raw.hold_packets.as_ref(), 65_536) {
            n.hold_packets = v as usize;
        }
        if let Some(v) = self.count("neighbours", "hold_timeout_ms", raw.hold_timeout_ms.as_ref(), 60_000) {
            n.hold_timeout = std::time::Duration::from_millis(v);
        }
        let interval = raw.resolution_interval_ms.as_ref();
        if let Some(v) = self.count("neighbours", "resolution_interval_ms", interval, 60_000) {
            n.resolution_interval = std::time::Duration::from_millis(v);
        }
        if let Some(v) = self.count("neighbours", "requests_per_s", raw.requests_per_s.as_ref(), 1_000_000) {
            n.requests_per_s = v as u32;
        }
        if let Some(v) = self.count("neighbours", "request_burst", raw.request_burst.as_ref(), 1_000_000) {
            n.request_burst = v as u32;
        }
        n
    }

    fn check_underlay(
        &mut self,
        raw: Option<&Spanned<RawUnderlay>>,
        topology: &TopologySource,
        port_names: &[String],
    ) -> Option<UnderlayConfig> {
        let raw = raw?;
        if *topology != TopologySource::Store {
            self.error(
                raw.span(),
                "[underlay] is for [topology] source = \"store\" (a topology file has its own [underlay])",
            );
            return None;
        }
        let u = raw.get_ref();
        let port = match &u.port {
            None => {
                self.error(raw.span(), "[underlay] needs port = \"NAME\" (the [[port]] facing the underlay)");
                None
            }
            Some(p) if !port_names.iter().any(|n| n == p.get_ref()) => {
                self.error(p.span(), format!("[underlay] port {:?} is not a [[port]] name", p.get_ref()));
                None
            }
            Some(p) => Some(p.get_ref().clone()),
        };
        let address = match &u.address {
            None => {
                self.error(raw.span(), "[underlay] needs address = \"A.B.C.D/LEN\" (this gateway's tunnel endpoint)");
                None
            }
            Some(a) => match a.get_ref().parse::<ipnet::Ipv4Net>() {
                Ok(net) if net.prefix_len() < 32 && net.addr() != net.network() && net.addr() != net.broadcast() => {
                    Some(net)
                }
                _ => {
                    self.error(
                        a.span(),
                        format!("[underlay] address {:?} is not an IPv4 host address with its prefix, e.g. \"192.168.7.1/24\"", a.get_ref()),
                    );
                    None
                }
            },
        };
        let gateway = match (&u.gateway, address) {
            (None, _) => None,
            (Some(g), net) => match g.get_ref().parse::<std::net::Ipv4Addr>() {
                Ok(ip) if net.is_none_or(|n| n.contains(&ip) && ip != n.addr()) => Some(ip),
                _ => {
                    self.error(
                        g.span(),
                        format!("[underlay] gateway {:?} is not an IPv4 address on the underlay subnet", g.get_ref()),
                    );
                    None
                }
            },
        };
        let vxlan_port = match &u.vxlan_port {
            None => 4789,
            Some(v) => match u16::try_from(*v.get_ref()) {
                Ok(p) if p != 0 => p,
                _ => {
                    self.error(v.span(), format!("[underlay] vxlan_port {} is not a UDP port (1-65535)", v.get_ref()));
                    4789
                }
            },
        };
        Some(UnderlayConfig {
            port: port?,
            address: address?.addr(),
            prefix_len: address?.prefix_len(),
            gateway,
            vxlan_port,
        })
    }

    fn check_topology(&mut self, t: &Spanned<RawTopology>) -> TopologySource {
        let raw = t.get_ref();
        let source = raw.source.as_ref().map(|s| (s.get_ref().as_str(), s.span()));
        match (source, &raw.file) {
            (Some(("store", _)), None) => TopologySource::Store,
            (Some(("store", span)), Some(_)) => {
                self.error(span, "[topology] source = \"store\" takes no file (remove file, or use source = \"file\")");
                TopologySource::Store
            }
            (Some(("file", _)) | None, Some(f)) if !f.get_ref().is_empty() => {
                TopologySource::File(PathBuf::from(f.get_ref()))
            }
            (Some(("file", _)) | None, Some(f)) => {
                self.error(f.span(), "[topology] file is empty");
                TopologySource::CrossConnect
            }
            (Some(("file", _)) | None, None) => {
                self.error(
                    t.span(),
                    "[topology] needs source = \"store\" (the REST API's topology) or file = \"PATH\" (a topology file, docs/topology.md)",
                );
                TopologySource::CrossConnect
            }
            (Some((other, span)), _) => {
                self.error(span, format!("[topology] source must be \"store\" or \"file\", not {other:?}"));
                TopologySource::CrossConnect
            }
        }
    }

    fn check_host(&mut self, raw: Option<&Spanned<RawHost>>) -> HostConfig {
        let Some(raw) = raw.map(|r| r.get_ref()) else { return HostConfig::default() };
        let id = raw.id.as_ref().and_then(|id| match id.get_ref().parse::<uuid::Uuid>() {
            Ok(u) if !u.is_nil() => Some(u),
            _ => {
                self.error(
                    id.span(),
                    format!("[host] id {:?} is not a UUID (nor may it be the nil UUID)", id.get_ref()),
                );
                None
            }
        });
        let name = raw.name.as_ref().and_then(|n| {
            let name = n.get_ref().trim();
            if name.is_empty() || name.len() > 255 {
                self.error(n.span(), "[host] name must be 1 to 255 characters");
                None
            } else {
                Some(name.to_string())
            }
        });
        HostConfig { id, name }
    }

    fn check_rest(&mut self, raw: Option<&Spanned<RawRest>>) -> Rest {
        let default: SocketAddr = DEFAULT_REST_LISTEN.parse().expect("valid default");
        let https = raw.and_then(|r| r.get_ref().https.as_ref()).and_then(|h| self.check_https(h));
        let Some(listen) = raw.and_then(|r| r.get_ref().listen.as_ref()) else {
            return Rest { listen: default, https };
        };
        let listen = self.socket_addr("[rest] listen", listen, "0.0.0.0:8181").unwrap_or(default);
        if https.as_ref().is_some_and(|h| h.listen == listen) {
            let span = raw.and_then(|r| r.get_ref().https.as_ref()).map(|h| h.span()).unwrap_or(0..0);
            self.error(span, format!("[rest.https] listen {listen} is also [rest] listen: give HTTPS its own port"));
        }
        Rest { listen, https }
    }

    /// `[metrics] listen`: an address of its own (not the REST API's).
    fn check_metrics(&mut self, raw: Option<&Spanned<RawMetrics>>, rest: &Rest) -> Option<SocketAddr> {
        let raw = raw?;
        let Some(listen) = &raw.get_ref().listen else {
            self.error(raw.span(), "[metrics] needs listen = \"ADDR:PORT\", e.g. \"127.0.0.1:9464\"".to_string());
            return None;
        };
        let addr = self.socket_addr("[metrics] listen", listen, "127.0.0.1:9464")?;
        let taken =
            [Some(("[rest] listen", rest.listen)), rest.https.as_ref().map(|h| ("[rest.https] listen", h.listen))];
        if let Some((key, _)) = taken.into_iter().flatten().find(|&(_, a)| a == addr) {
            self.error(
                listen.span(),
                format!("[metrics] listen {addr} is also {key}: give the metrics their own port"),
            );
            return None;
        }
        Some(addr)
    }

    fn socket_addr(&mut self, key: &str, v: &Spanned<String>, example: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    v.span(),
                    format!(
                        "{key} {:?} is not an ADDR:PORT socket address, e.g. \"{example}\" or \"[::1]:{}\"",
                        v.get_ref(),
                        example.rsplit(':').next().unwrap_or_default()
                    ),
                );
                None
            }
        }
    }

    /// `[rest.https]`: every key present, the files readable PEM, the key the certificate's.
    fn check_https(&mut self, raw: &Spanned<RawHttps>) -> Option<Https> {
        let h = raw.get_ref();
        let mut missing = Vec::new();
        let listen = match &h.listen {
            Some(v) => self.socket_addr("[rest.https] listen", v, "0.0.0.0:8443"),
            None => {
                missing.push("listen = \"0.0.0.0:8443\"");
                None
            }
        };
        let mut file = |key: &'static str, v: &Option<Spanned<String>>, example: &'static str| match v {
            Some(p) if p.get_ref().is_empty() => {
                self.error(p.span(), format!("[rest.https] {key} is empty: name a PEM file"));
                None
            }
            Some(p) => Some((self.dir.join(p.get_ref()), p.span())),
            None => {
                missing.push(example);
                None
            }
        };
        let cert = file("cert", &h.cert, "cert = \"PATH\" (PEM certificate chain)");
        let key = file("key", &h.key, "key = \"PATH\" (PEM private key)");
        if !missing.is_empty() {
            self.error(raw.span(), format!("[rest.https] needs {}", missing.join(", ")));
        }
        let ((cert, cert_span), (key, key_span), listen) = (cert?, key?, listen?);
        match crate::rest::tls_config(&cert, &key) {
            Ok(_) => Some(Https { listen, cert, key }),
            Err(e) => {
                let span = match e {
                    crate::rest::TlsProblem::Cert { .. } => cert_span,
                    _ => key_span,
                };
                self.error(span, format!("[rest.https] {e}"));
                None
            }
        }
    }

    fn check_store(&mut self, raw: Option<&Spanned<RawStore>>) -> StoreConfig {
        let default = StoreConfig { path: PathBuf::from(DEFAULT_STORE_PATH), zookeeper: None };
        let Some(raw) = raw else {
            return default;
        };
        let r = raw.get_ref();
        let zookeeper_keys = [
            ("hosts", r.hosts.as_ref().map(|v| v.span())),
            ("root", r.root.as_ref().map(|v| v.span())),
            ("session_timeout_ms", r.session_timeout_ms.as_ref().map(|v| v.span())),
            ("operation_timeout_ms", r.operation_timeout_ms.as_ref().map(|v| v.span())),
            ("change_retention", r.change_retention.as_ref().map(|v| v.span())),
        ];
        match r.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("embedded", _)) => {
                for (key, span) in zookeeper_keys {
                    if let Some(span) = span {
                        self.error(
                            span,
                            format!("[store] {key} is for kind = \"zookeeper\"; the embedded store uses path"),
                        );
                    }
                }
            }
            Some(("zookeeper", span)) => {
                if let Some(p) = &r.path {
                    self.error(p.span(), "[store] path is for kind = \"embedded\"; ZooKeeper uses hosts and root");
                }
                let zookeeper = self.check_zookeeper(r, span);
                return StoreConfig { zookeeper, ..default };
            }
            Some((other, span)) => {
                self.error(span, format!("[store] kind {other:?} is unknown: use \"embedded\" or \"zookeeper\""));
                return default;
            }
        }
        match &r.path {
            None => default,
            Some(p) if p.get_ref().is_empty() => {
                self.error(p.span(), "[store] path is empty: name the store file, e.g. \"/var/lib/midogw/store.redb\"");
                default
            }
            Some(p) => StoreConfig { path: PathBuf::from(p.get_ref()), zookeeper: None },
        }
    }

    fn check_zookeeper(&mut self, r: &RawStore, kind_span: std::ops::Range<usize>) -> Option<ZookeeperSettings> {
        let hosts = match &r.hosts {
            None => {
                self.error(kind_span, "[store] kind = \"zookeeper\" needs hosts = \"host:port,...\"");
                return None;
            }
            Some(h) => {
                let text = h.get_ref().trim();
                let bad = text.is_empty()
                    || text.split(',').any(|entry| match entry.trim().rsplit_once(':') {
                        Some((host, port)) => host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0),
                        None => true,
                    });
                if bad {
                    self.error(
                        h.span(),
                        format!(
                            "[store] hosts {:?} is not a list of host:port, e.g. \"10.0.0.1:2181,10.0.0.2:2181\"",
                            text
                        ),
                    );
                    return None;
                }
                text.split(',').map(str::trim).collect::<Vec<_>>().join(",")
            }
        };
        let root = match &r.root {
            None => String::new(),
            Some(root) => {
                let text = root.get_ref();
                let ok = text.is_empty()
                    || (text.starts_with('/') && !text.ends_with('/') && !text.contains("//") && !text.contains(' '));
                if !ok {
                    self.error(root.span(), format!("[store] root {text:?} must be empty or an absolute path like \"/midogw\" without a trailing /"));
                    return None;
                }
                text.clone()
            }
        };
        let mut positive = |what: &str, v: &Option<Spanned<i64>>, default: u64| -> Option<u64> {
            match v {
                None => Some(default),
                Some(n) if *n.get_ref() > 0 => Some(*n.get_ref() as u64),
                Some(n) => {
                    self.error(n.span(), format!("[store] {what} must be a positive number, not {}", n.get_ref()));
                    None
                }
            }
        };
        let session = positive("session_timeout_ms", &r.session_timeout_ms, 30_000)?;
        let operation = positive("operation_timeout_ms", &r.operation_timeout_ms, 5_000)?;
        let retention = positive("change_retention", &r.change_retention, 10_000)?;
        Some(ZookeeperSettings {
            hosts,
            root,
            session_timeout: std::time::Duration::from_millis(session),
            operation_timeout: std::time::Duration::from_millis(operation),
            change_retention: retention,
        })
    }

    fn check_auth(&mut self, raw: Option<&Spanned<RawAuth>>) -> Auth {
        let Some(raw) = raw else {
            return Auth::Local(Vec::new());
        };
        let r = raw.get_ref();
        match r.provider.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("local", _)) => {}
            Some(("mock", _)) => {
                if let Some(first) = r.account.first() {
                    self.error(first.span(), "[[auth.account]] is only for provider = \"local\"; mock lets anyone in");
                }
                return Auth::Mock;
            }
            Some((other, span)) => {
                self.error(
                    span,
                    format!("[auth] provider {other:?} is unknown: use \"local\" (or \"mock\", for tests only)"),
                );
                return Auth::Local(Vec::new());
            }
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut accounts = Vec::new();
        for raw_account in &r.account {
            let a = raw_account.get_ref();
            let header = raw_account.span();
            let mut field = |name: &str, v: &Option<Spanned<String>>| -> Option<Spanned<String>> {
                match v {
                    Some(v) if !v.get_ref().is_empty() => Some(v.clone()),
                    Some(v) => {
                        self.error(v.span(), format!("[[auth.account]] {name} is empty"));
                        None
                    }
                    None => {
                        self.error(header.clone(), format!("[[auth.account]] needs {name}"));
                        None
                    }
                }
            };
            let (user, hash, tenant, role) = (
                field("user", &a.user),
                field("password_hash", &a.password_hash),
                field("tenant", &a.tenant),
                field("role", &a.role),
            );
            if let Some(u) = &user {
                let line = self.line(&u.span());
                if let Some(first) = seen.insert(u.get_ref().clone(), line) {
                    self.error(u.span(), format!("account {:?} is already defined on line {first}", u.get_ref()));
                }
            }
            if let Some(h) = &hash {
                if let Err(why) = control::LocalAuth::check_hash(h.get_ref()) {
                    self.error(
                        h.span(),
                        format!("password_hash is not an argon2 PHC string ({why}): generate one with `midogw hash-password`"),
                    );
                }
            }
            let admin = match role.as_ref().map(|r| r.get_ref().as_str()) {
                Some("admin") => true,
                Some("tenant") => false,
                Some(other) => {
                    let span = role.as_ref().map_or(header.clone(), |r| r.span());
                    self.error(span, format!("role {other:?} is unknown: use \"admin\" or \"tenant\""));
                    false
                }
                None => false,
            };
            if let (Some(user), Some(hash), Some(tenant)) = (user, hash, tenant) {
                accounts.push(Account {
                    user: user.into_inner(),
                    password_hash: hash.into_inner(),
                    tenant: tenant.into_inner(),
                    admin,
                });
            }
        }
        Auth::Local(accounts)
    }

    fn cpu(&mut self, v: &Spanned<i64>, what: &str) -> Option<u32> {
        let cpu = u32::try_from(*v.get_ref()).ok();
        if cpu.is_none() {
            self.error(v.span(), format!("{what}: {} is not a CPU number (0 or more)", v.get_ref()));
        }
        cpu
    }

    fn check_file_prefix(&mut self, prefix: &Spanned<String>) {
        let p = prefix.get_ref();
        let ok = !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            self.error(
                prefix.span(),
                format!(
                    "file_prefix {p:?} is not usable: it names EAL's runtime directory and \
                     hugepage files, so use letters, digits, '_', '-' and '.' only, e.g. \"midogw\""
                ),
            );
        }
    }

    fn check_managed_arg(&mut self, arg: &Spanned<String>) {
        let a = arg.get_ref().as_str();
        let hit = MANAGED_EAL_OPTIONS.iter().find(|(opt, _)| {
            if opt.starts_with("--") {
                // EAL parses with getopt_long, which also takes any unambiguous abbreviation
                // (`--file-pre=x` is `--file-prefix=x`); an ambiguous one EAL refuses anyway.
                let name = a.split_once('=').map_or(a, |(name, _)| name);
                name.len() > 2 && name.starts_with("--") && opt.starts_with(name)
            } else {
                // Short options also take their value attached: -l1-3, -a0000:03:00.0.
                a.starts_with(opt)
            }
        });
        if let Some((opt, key)) = hit {
            self.error(
                arg.span(),
                format!(
                    "EAL option {opt} is set by midogw itself: remove {a:?} from [eal] args and \
                     use {key} instead"
                ),
            );
        }
    }

    fn check_workers(
        &mut self,
        raw: Option<&Spanned<RawWorkers>>,
        main_core: Option<u32>,
        facts: &SystemFacts,
        online: &str,
    ) -> Vec<u32> {
        let Some(section) = raw else {
            self.error(
                0..0,
                "missing [workers] section: add [workers] with cores = [<lcore>, ...], the CPUs \
                 that forward packets",
            );
            return Vec::new();
        };
        let Some(cores) = &section.get_ref().cores else {
            self.error(section.span(), "[workers] needs cores = [<lcore>, ...], the CPUs that forward packets");
            return Vec::new();
        };
        if cores.get_ref().is_empty() {
            self.error(
                cores.span(),
                format!(
                    "[workers] cores is empty: list at least one CPU to forward packets (online \
                     CPUs: {online})"
                ),
            );
        }
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        let mut workers = Vec::new();
        for v in cores.get_ref() {
            let Some(core) = self.cpu(v, "[workers] cores") else {
                continue;
            };
            if let Some(first) = seen.get(&core) {
                self.error(
                    v.span(),
                    format!(
                        "core {core} is listed twice in [workers] cores (first on line {first}): \
                         each worker needs a CPU of its own"
                    ),
                );
                continue;
            }
            seen.insert(core, self.line(&v.span()));
            if Some(core) == main_core {
                self.error(
                    v.span(),
                    format!(
                        "core {core} is also [eal] main_core: the control thread and a worker \
                         cannot share a CPU, because workers poll without ever yielding; pick \
                         another core for one of them"
                    ),
                );
            }
            if !facts.online_cpus.contains(&core) {
                self.error(v.span(), format!("core {core} is not an online CPU (online CPUs: {online})"));
            }
            workers.push(core);
        }
        workers
    }

    fn check_port(
        &mut self,
        index: usize,
        raw: &Spanned<RawPort>,
        workers: u32,
        facts: &SystemFacts,
    ) -> (Port, PortDraft) {
        let header = raw.span();
        let p = raw.get_ref();
        let label = match &p.name {
            Some(n) if !n.get_ref().is_empty() => format!("port {}", n.get_ref()),
            _ => format!("port #{index}"),
        };

        match &p.name {
            None => self.error(header.clone(), format!("{label} needs a name, e.g. name = \"up0\"")),
            Some(n) => self.check_port_name(n),
        }

        let device = match &p.devargs {
            None => {
                self.error(header.clone(), format!("{label} needs devargs: {DEVARGS_FORMS}"));
                None
            }
            Some(d) => match parse_devargs(d.get_ref()) {
                Ok(device) => {
                    self.check_device_present(d, &device, facts);
                    Some(device)
                }
                Err(why) => {
                    self.error(d.span(), format!("bad devargs {:?}: {why}; {DEVARGS_FORMS}", d.get_ref()));
                    None
                }
            },
        };

        let mtu = match &p.mtu {
            None => DEFAULT_MTU,
            Some(v) => match u16::try_from(*v.get_ref()) {
                Ok(m) if (sizing::MIN_MTU..=sizing::JUMBO_MTU).contains(&m) => m,
                _ => {
                    self.error(
                        v.span(),
                        format!(
                            "mtu {} is out of range: use {}..={} ({} is the largest MTU the \
                             jumbo mbufs hold)",
                            v.get_ref(),
                            sizing::MIN_MTU,
                            sizing::JUMBO_MTU,
                            sizing::JUMBO_MTU
                        ),
                    );
                    DEFAULT_MTU
                }
            },
        };

        let default_queues = u16::try_from(workers.clamp(1, u32::from(MAX_QUEUES))).unwrap_or(1);
        let queues = match &p.queues {
            None => default_queues,
            Some(v) => match u16::try_from(*v.get_ref()) {
                Ok(q) if (1..=MAX_QUEUES).contains(&q) => q,
                _ => {
                    self.error(
                        v.span(),
                        format!(
                            "queues = {} is out of range: use 1..={MAX_QUEUES} RX queues, or \
                             remove the key for one per worker",
                            v.get_ref()
                        ),
                    );
                    default_queues
                }
            },
        };

        let port = Port {
            name: p.name.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default(),
            devargs: p.devargs.as_ref().map(|d| d.get_ref().clone()).unwrap_or_default(),
            device: device.clone().unwrap_or(Device::Pci { address: String::new() }),
            mtu,
            queues,
        };
        let draft = PortDraft { label, header, device };
        (port, draft)
    }

    fn check_port_name(&mut self, name: &Spanned<String>) {
        let n = name.get_ref();
        let problem = if n.is_empty() {
            Some("port name is empty: give the port a short name such as \"up0\"".to_string())
        } else if n.chars().count() > MAX_PORT_NAME {
            Some(format!(
                "port name {n:?} is too long ({} characters): use at most {MAX_PORT_NAME}, the \
                 limit of a Linux interface name",
                n.chars().count()
            ))
        } else if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            Some(format!("port name {n:?} has characters other than letters, digits, '_' and '-'"))
        } else {
            None
        };
        if let Some(message) = problem {
            self.error(name.span(), message);
        }
    }

    /// The device must exist here: the PCI function, the DPDK driver, the kernel interface.
    fn check_device_present(&mut self, devargs: &Spanned<String>, device: &Device, facts: &SystemFacts) {
        match device {
            Device::Pci { address } => {
                if !facts.pci_devices.contains(address) {
                    self.error(
                        devargs.span(),
                        format!(
                            "unknown port: no PCI device {address} on this machine (lspci; is it \
                             bound to vfio-pci?)"
                        ),
                    );
                }
            }
            Device::Vdev { name, driver, .. } => {
                if let Some(drivers) = &facts.dpdk_drivers {
                    if !drivers.contains(driver) {
                        let known = drivers.iter().cloned().collect::<Vec<_>>().join(", ");
                        let span = self.inner_span(devargs, 0..driver.len());
                        self.error(
                            span,
                            format!(
                                "unknown DPDK driver {driver}: the installed DPDK has no such \
                                 poll-mode driver (it has: {known})"
                            ),
                        );
                    }
                }
                let Some((_, keys, required)) = KERNEL_IFACE_DRIVERS.iter().find(|(d, _, _)| d == driver) else {
                    return;
                };
                let value = devargs.get_ref();
                let mut has_iface = false;
                for key in *keys {
                    let Some(iface) = device.arg(key) else {
                        continue;
                    };
                    has_iface = true;
                    if !facts.net_interfaces.contains(iface) {
                        let needle = format!(",{key}={iface}");
                        let span = match value.find(&needle) {
                            Some(at) => {
                                let start = at + key.len() + 2;
                                self.inner_span(devargs, start..start + iface.len())
                            }
                            None => devargs.span(),
                        };
                        self.error(
                            span,
                            format!(
                                "unknown port: network interface {iface} does not exist (ip link \
                                 shows the interfaces; create it or fix {key}=)"
                            ),
                        );
                    }
                }
                if *required && !has_iface {
                    self.error(
                        devargs.span(),
                        format!(
                            "{name} needs the kernel interface to attach to: add iface=<name>, \
                             e.g. \"{name},iface=veth0\""
                        ),
                    );
                }
            }
        }
    }

    fn check_duplicate_names(&mut self, ports: &[Spanned<RawPort>]) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for name in ports.iter().filter_map(|p| p.get_ref().name.as_ref()) {
            let n = name.get_ref().as_str();
            if n.is_empty() {
                continue;
            }
            match seen.get(n) {
                Some(first) => self.error(
                    name.span(),
                    format!(
                        "port name {n:?} is already used on line {first}: port names must be \
                         unique"
                    ),
                ),
                None => {
                    seen.insert(n, self.line(&name.span()));
                }
            }
        }
    }

    fn check_duplicate_devices(&mut self, ports: &[Spanned<RawPort>], drafts: &[PortDraft]) {
        let mut devices: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut ifaces: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (raw, draft) in ports.iter().zip(drafts) {
            let (Some(devargs), Some(device)) = (&raw.get_ref().devargs, &draft.device) else {
                continue;
            };
            let line = self.line(&devargs.span());
            let dpdk_name = device.dpdk_name().to_string();
            if let Some((first_line, first_label)) = devices.get(&dpdk_name) {
                self.error(
                    devargs.span(),
                    format!(
                        "device {dpdk_name} is already used by {first_label} (line {first_line}): \
                         each port needs a device of its own"
                    ),
                );
                continue;
            }
            devices.insert(dpdk_name, (line, draft.label.clone()));
            // Two vdevs on one kernel interface would both see every packet it receives.
            if let Some(iface) = device.arg("iface") {
                if let Some((first_line, first_label)) = ifaces.get(iface) {
                    self.error(
                        devargs.span(),
                        format!(
                            "interface {iface} is already used by {first_label} (line \
                             {first_line}): each port needs an interface of its own"
                        ),
                    );
                } else {
                    ifaces.insert(iface.to_string(), (line, draft.label.clone()));
                }
            }
        }
    }

    fn check_memory(&mut self, args: &[Spanned<String>], mbufs: u32, anchor: Range<usize>, facts: &SystemFacts) {
        let need = sizing::required_memory_bytes(mbufs);
        let need_mib = need.div_ceil(MIB);
        let mut no_huge: Option<Range<usize>> = None;
        let mut dash_m: Option<(u64, Range<usize>)> = None;
        let mut socket_mem: Option<Range<usize>> = None;
        // A malformed memory option is reported once, not again as a shortfall.
        let mut bad_size = false;
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].get_ref().as_str();
            let span = args[i].span();
            if arg == "--no-huge" {
                no_huge = Some(span);
            } else if let Some(attached) = arg.strip_prefix("-m").map(|r| r.strip_prefix('=').unwrap_or(r)) {
                let value = if attached.is_empty() {
                    i += 1;
                    args.get(i)
                } else {
                    Some(&args[i])
                };
                let text = if attached.is_empty() { value.map(|v| v.get_ref().as_str()) } else { Some(attached) };
                let at = value.map_or(span.clone(), |v| v.span());
                match text.and_then(|t| t.parse::<u64>().ok()) {
                    Some(mib) => dash_m = Some((mib, at)),
                    None => {
                        bad_size = true;
                        self.error(at, format!("-m needs the memory size in MiB, e.g. \"-m\", \"{need_mib}\""));
                    }
                }
            } else if arg == "--socket-mem" || arg.starts_with("--socket-mem=") {
                if arg == "--socket-mem" {
                    i += 1;
                }
                socket_mem = Some(span);
            }
            i += 1;
        }

        if let (Some(_), Some(sm)) = (&dash_m, &socket_mem) {
            self.error(sm.clone(), "-m and --socket-mem cannot both be given (EAL refuses): keep one");
        }
        if let Some(no_huge_span) = no_huge {
            if let Some(sm) = socket_mem {
                bad_size = true;
                self.error(
                    sm,
                    format!(
                        "--socket-mem cannot be used with --no-huge (EAL refuses): use \"-m\", \
                         \"{need_mib}\" instead"
                    ),
                );
            }
            let (given, at, how) = match dash_m {
                Some((mib, at)) => (mib, at, "-m".to_string()),
                None => (NO_HUGE_DEFAULT_MIB, no_huge_span, "the --no-huge default without -m".to_string()),
            };
            if !bad_size && given.saturating_mul(MIB) < need {
                self.error(
                    at,
                    format!(
                        "too little memory: the mbuf pool of {mbufs} jumbo mbufs needs {need_mib} \
                         MiB, [eal] args give {given} MiB ({how}); give \"-m\", \"{need_mib}\" \
                         or more, or lower [mempool] mbufs"
                    ),
                );
            }
        } else if facts.hugepage_free_bytes < need {
            let free_mib = facts.hugepage_free_bytes / MIB;
            let pages = (need - facts.hugepage_free_bytes).div_ceil(HUGEPAGE_HINT_BYTES);
            self.error(
                anchor,
                format!(
                    "too few hugepages: {free_mib} MiB free, {need_mib} MiB needed for the mbuf \
                     pool of {mbufs} jumbo mbufs and EAL; reserve more (with 2 MiB pages, raise \
                     /proc/sys/vm/nr_hugepages by {pages}, e.g. echo {pages} > \
                     /proc/sys/vm/nr_hugepages when none are reserved yet, and mount hugetlbfs) \
                     or add \"--no-huge\", \"-m\", \"{need_mib}\" to [eal] args"
                ),
            );
        }
    }
}

/// Classifies devargs as a PCI address or a vdev; the error says what is wrong with it.
fn parse_devargs(devargs: &str) -> Result<Device, String> {
    if let Some(address) = parse_pci(devargs) {
        return Ok(Device::Pci { address });
    }
    let mut parts = devargs.split(',');
    let name = parts.next().unwrap_or("");
    if !name.starts_with("net_") {
        return Err(if name.contains(':') {
            "not a PCI address (domain 4 hex digits, bus 2, device 00-1f, function 0-7)".into()
        } else {
            "a virtual device name starts with \"net_\"".into()
        });
    }
    let driver = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let instance = &name[driver.len()..];
    if driver == "net_" {
        return Err("the driver is missing after \"net_\"".into());
    }
    let driver_ok = driver.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !driver_ok {
        return Err(format!("driver name {driver:?} may contain only lowercase letters, digits and '_'"));
    }
    if instance.is_empty() {
        return Err(format!("the virtual device needs an instance number, e.g. {driver}0"));
    }
    let mut args = Vec::new();
    for part in parts {
        match part.split_once('=') {
            Some((key, value)) if !key.is_empty() => args.push((key.to_string(), value.to_string())),
            _ => return Err(format!("argument {part:?} is not key=value")),
        }
    }
    Ok(Device::Vdev { name: name.to_string(), driver: driver.to_string(), args })
}

/// `DDDD:BB:DD.F` or `BB:DD.F` in hex, normalised to lowercase with the domain.
fn parse_pci(s: &str) -> Option<String> {
    fn hex(part: &str, digits: usize) -> Option<u32> {
        (part.len() == digits && part.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(part, 16).ok())
            .flatten()
    }
    let fields: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match fields.as_slice() {
        [bus, devfn] => (0, *bus, *devfn),
        [domain, bus, devfn] => (hex(domain, 4)?, *bus, *devfn),
        _ => return None,
    };
    let bus = hex(bus, 2)?;
    let (dev, func) = devfn.split_once('.')?;
    let (dev, func) = (hex(dev, 2)?, hex(func, 1)?);
    (dev <= 0x1f && func <= 7).then(|| format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn line_of(text: &str, offset: usize) -> &str {
    let (line, _) = line_column(text, offset);
    text.lines().nth(line - 1).unwrap_or("")
}

/// `0-3,6` for operators; "none" when nothing was found.
fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for cpu in sorted {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    if ranges.is_empty() {
        return "none".into();
    }
    ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SystemFacts {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        SystemFacts {
            online_cpus: vec![0, 1, 2],
            hugepage_free_bytes: 4 << 30,
            pci_devices: set(&["0000:03:00.0", "0000:03:00.1"]),
            net_interfaces: set(&["lo", "veth0", "veth1"]),
            dpdk_drivers: Some(set(&[
                "net_af_packet",
                "net_af_xdp",
                "net_ring",
                "net_tap",
                "net_pcap",
                "net_null",
                "net_ixgbe",
            ])),
        }
    }

    /// Joins lines so that a test's line numbers are its array indexes plus one.
    fn lines(ls: &[&str]) -> String {
        ls.join("\n") + "\n"
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse("t.toml", text, &facts()) {
            Ok(c) => panic!("expected problems, got {c:?}"),
            Err(p) => {
                assert_eq!(p.path, "t.toml");
                p.list
            }
        }
    }

    /// Exactly one problem, at `line:column`, whose message contains `needle`.
    #[track_caller]
    fn one(text: &str, line: usize, column: usize, needle: &str) -> Problem {
        let list = problems(text);
        assert_eq!(list.len(), 1, "{list:#?}");
        let p = list.into_iter().next().expect("one problem");
        assert_eq!((p.line, p.column), (line, column), "{p:?}");
        assert!(p.message.contains(needle), "{:?} lacks {needle:?}", p.message);
        p
    }

    const WORKERS: &str = "[workers]\ncores = [1]\n";
    /// Two ports, so that EAL (and its memory) is needed.
    const RING_PORTS: &str =
        "\n[[port]]\nname = \"ra\"\ndevargs = \"net_ring0\"\n[[port]]\nname = \"rb\"\ndevargs = \"net_ring1\"\n";

    fn with_workers(ls: &[&str]) -> String {
        lines(ls) + WORKERS
    }

    fn ring_pair() -> [&'static str; 6] {
        ["[[port]]", "name = \"a\"", "devargs = \"net_ring0\"", "[[port]]", "name = \"b\"", "devargs = \"net_ring1\""]
    }

    #[test]
    fn good_config_resolves_defaults_and_classifies_devices() {
        let text = lines(&[
            "[eal]",
            "args = [\"--no-huge\", \"-m\", \"2048\"]",
            "main_core = 0",
            "",
            "[[port]]",
            "name = \"up0\"",
            "devargs = \"03:00.0\"",
            "",
            "[[port]]",
            "name = \"down0\"",
            "devargs = \"net_af_packet0,iface=veth0,qpairs=2\"",
            "mtu = 9000",
            "queues = 1",
            "",
            "[workers]",
            "cores = [1, 2]",
        ]);
        let c = parse("t.toml", &text, &facts()).expect("valid");
        assert_eq!(c.eal.args, ["--no-huge", "-m", "2048"]);
        assert_eq!(c.eal.main_core, 0);
        assert_eq!(c.eal.file_prefix, "midogw");
        assert_eq!(c.workers, [1, 2]);
        assert_eq!(c.ports.len(), 2);
        let up = &c.ports[0];
        assert_eq!(up.name, "up0");
        assert_eq!(up.devargs, "03:00.0");
        assert_eq!(up.device, Device::Pci { address: "0000:03:00.0".into() });
        assert_eq!(up.device.dpdk_name(), "0000:03:00.0");
        assert_eq!((up.mtu, up.queues), (1500, 2), "queues default to the worker count");
        let down = &c.ports[1];
        assert_eq!(
            down.device,
            Device::Vdev {
                name: "net_af_packet0".into(),
                driver: "net_af_packet".into(),
                args: vec![("iface".into(), "veth0".into()), ("qpairs".into(), "2".into())],
            }
        );
        assert_eq!(down.device.dpdk_name(), "net_af_packet0");
        assert_eq!((down.mtu, down.queues), (9000, 1));
        assert_eq!(c.mempool_mbufs, sizing::default_mbufs(3, 4, 2));
    }

    #[test]
    fn minimal_config_uses_hugepages_and_explicit_mbufs() {
        let text = lines(&["[mempool]", "mbufs = 4095", "[workers]", "cores = [2]"]);
        let c = parse("t.toml", &text, &facts()).expect("valid");
        assert_eq!(c.mempool_mbufs, 4095);
        assert!(c.ports.is_empty());
        assert_eq!(c.eal.args, Vec::<String>::new());
    }

    #[test]
    fn pci_addresses_are_normalised() {
        let ok = |s: &str| parse_pci(s);
        assert_eq!(ok("03:00.0").as_deref(), Some("0000:03:00.0"));
        assert_eq!(ok("0000:0A:1F.7").as_deref(), Some("0000:0a:1f.7"));
        assert_eq!(ok("0000:03:20.0"), None, "device is at most 1f");
        assert_eq!(ok("0000:03:00.8"), None, "function is at most 7");
        assert_eq!(ok("3:00.0"), None);
        assert_eq!(ok("net_ring0"), None);
    }

    #[test]
    fn unknown_pci_device() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"0000:05:00.0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"0000:03:00.0\"",
        ]);
        one(&text, 3, 11, "unknown port: no PCI device 0000:05:00.0 on this machine (lspci; is it bound to vfio-pci?)");
    }

    #[test]
    fn unknown_network_interface() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_af_packet0,iface=veth9\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_af_packet1,iface=veth1\"",
        ]);
        // Points at the interface name inside the string.
        one(&text, 3, 33, "unknown port: network interface veth9 does not exist");
    }

    #[test]
    fn af_packet_needs_an_interface() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_af_xdp0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_ring0\"",
        ]);
        one(&text, 3, 11, "add iface=<name>");
    }

    #[test]
    fn unknown_dpdk_driver() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_bogus0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_ring0\"",
        ]);
        one(&text, 3, 12, "unknown DPDK driver net_bogus");
        // Without knowledge of the installed drivers the check is skipped.
        let mut f = facts();
        f.dpdk_drivers = None;
        assert!(parse("t.toml", &text, &f).is_ok());
    }

    #[test]
    fn bad_devargs() {
        for bad in ["eth0", "net_ring", "net_0", "net_Ring0", "net_ring0,iface", "net_ring0,=x", "0000:03:00", ""] {
            let text = with_workers(&[
                "[[port]]",
                "name = \"a\"",
                &format!("devargs = {bad:?}"),
                "[[port]]",
                "name = \"b\"",
                "devargs = \"net_ring1\"",
            ]);
            let p = one(&text, 3, 11, "bad devargs");
            assert!(p.message.contains("\"0000:03:00.0\""), "{}", p.message);
            assert!(p.message.contains("net_af_packet0,iface=veth0"), "{}", p.message);
        }
    }

    #[test]
    fn same_device_twice() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"0000:03:00.0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"03:00.0\"",
        ]);
        one(&text, 6, 11, "already used by port a (line 3)");
    }

    #[test]
    fn duplicate_port_names() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_ring0\"",
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_ring1\"",
        ]);
        one(&text, 5, 8, "already used on line 2");
    }

    #[test]
    fn bad_port_names() {
        for (name, needle) in [("", "empty"), ("a-very-long-port-name", "too long"), ("up 0", "characters")] {
            let text = with_workers(&[
                "[[port]]",
                &format!("name = {name:?}"),
                "devargs = \"net_ring0\"",
                "[[port]]",
                "name = \"b\"",
                "devargs = \"net_ring1\"",
            ]);
            one(&text, 2, 8, needle);
        }
    }

    #[test]
    fn mtu_and_queues_out_of_range() {
        let text = with_workers(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_ring0\"",
            "mtu = 9001",
            "queues = 17",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_ring1\"",
            "mtu = 67",
            "queues = 0",
        ]);
        let list = problems(&text);
        let at: Vec<_> = list.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(4, 7), (5, 10), (9, 7), (10, 10)], "{list:#?}");
        assert!(list[0].message.contains("68..=9000"));
        assert!(list[1].message.contains("1..=16"));
    }

    #[test]
    fn odd_number_of_ports() {
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[[port]]", "name = \"c\"", "devargs = \"net_ring2\""]);
        one(&with_workers(&ls), 8, 1, "port c has no cross-connect partner");
    }

    #[test]
    fn topology_file_selects_the_pipeline_and_allows_an_odd_port() {
        let mut ls = ring_pair().to_vec();
        ls.extend([
            "",
            "[[port]]",
            "name = \"c\"",
            "devargs = \"net_ring2\"",
            "",
            "[topology]",
            "file = \"topo.toml\"",
        ]);
        let cfg = parse("t.toml", &with_workers(&ls), &facts()).expect("valid");
        assert_eq!(cfg.topology, TopologySource::File(PathBuf::from("topo.toml")));
        assert_eq!(cfg.ports.len(), 3);
        let cfg = parse("t.toml", &with_workers(&ring_pair()), &facts()).expect("valid");
        assert_eq!(cfg.topology, TopologySource::CrossConnect, "cross-connect without [topology]");
    }

    #[test]
    fn topology_needs_a_file() {
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[topology]"]);
        one(&with_workers(&ls), 8, 1, "[topology] needs source = \"store\"");
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[topology]", "file = \"\""]);
        one(&with_workers(&ls), 9, 8, "[topology] file is empty");
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[topology]", "source = \"zk\""]);
        one(&with_workers(&ls), 9, 10, "[topology] source must be \"store\" or \"file\"");
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[topology]", "source = \"store\"", "file = \"t.toml\""]);
        one(&with_workers(&ls), 9, 10, "takes no file");
    }

    #[test]
    fn host_identity() {
        let text = lines(&["[host]", "id = \"6f1c3a52-3f5e-4c1e-9a44-0d7b2a1e9c10\"", "name = \"gw1\""]);
        let cfg = parse("t.toml", &text, &facts()).expect("valid");
        assert_eq!(cfg.host.id, Some("6f1c3a52-3f5e-4c1e-9a44-0d7b2a1e9c10".parse().unwrap()));
        assert_eq!(cfg.host.name.as_deref(), Some("gw1"));
        one(&lines(&["[host]", "id = \"gw1\""]), 2, 6, "[host] id \"gw1\" is not a UUID");
    }

    #[test]
    fn flow_cache_sizing() {
        assert_eq!(parse("t.toml", WORKERS, &facts()).expect("valid").flows, FlowsConfig::default());
        let cfg =
            parse("t.toml", &lines(&[WORKERS, "[flows]", "per_worker = 1000000", "idle_timeout_s = 30"]), &facts());
        let flows = cfg.expect("valid").flows;
        assert_eq!((flows.per_worker, flows.idle_timeout.as_secs()), (1_000_000, 30));
        one(&lines(&[WORKERS, "[flows]", "per_worker = 0"]), 5, 14, "must be 1 to");
        one(&lines(&[WORKERS, "[flows]", "idle_timeout_s = -1"]), 5, 18, "must be 1 to 86400");
    }

    #[test]
    fn neighbour_cache_and_resolution_queue() {
        assert_eq!(parse("t.toml", WORKERS, &facts()).expect("valid").neighbours, NeighboursConfig::default());
        let cfg = parse(
            "t.toml",
            &lines(&[
                WORKERS,
                "[neighbours]",
                "per_worker = 65536",
                "lifetime_s = 1200",
                "hold_packets = 256",
                "hold_timeout_ms = 3000",
                "resolution_interval_ms = 250",
                "requests_per_s = 200",
                "request_burst = 20",
            ]),
            &facts(),
        );
        assert_eq!(
            cfg.expect("valid").neighbours,
            NeighboursConfig {
                per_worker: 65536,
                lifetime: std::time::Duration::from_secs(1200),
                hold_packets: 256,
                hold_timeout: std::time::Duration::from_secs(3),
                resolution_interval: std::time::Duration::from_millis(250),
                requests_per_s: 200,
                request_burst: 20,
            }
        );
        one(
            &lines(&[WORKERS, "[neighbours]", "per_worker = 0"]),
            5,
            14,
            "[neighbours] per_worker 0 must be 1 to 1048576",
        );
        one(
            &lines(&[WORKERS, "[neighbours]", "lifetime_s = 86401"]),
            5,
            14,
            "[neighbours] lifetime_s 86401 must be 1 to 86400",
        );
        one(&lines(&[WORKERS, "[neighbours]", "hold_packets = -1"]), 5, 16, "must be 1 to 65536");
        one(&lines(&[WORKERS, "[neighbours]", "hold_timeout_ms = 60001"]), 5, 19, "must be 1 to 60000");
        one(&lines(&[WORKERS, "[neighbours]", "resolution_interval_ms = 0"]), 5, 26, "must be 1 to 60000");
        one(&lines(&[WORKERS, "[neighbours]", "requests_per_s = 0"]), 5, 18, "must be 1 to 1000000");
        one(&lines(&[WORKERS, "[neighbours]", "request_burst = 1000001"]), 5, 17, "must be 1 to 1000000");
        one(&lines(&[WORKERS, "[neighbours]", "lifetime = 5"]), 5, 1, "unknown field");
    }

    #[test]
    fn icmp_error_rate() {
        assert_eq!(parse("t.toml", WORKERS, &facts()).expect("valid").icmp, IcmpConfig::default());
        assert_eq!(IcmpConfig::default(), IcmpConfig { errors_per_s: 1000, error_burst: 50 });
        let cfg = parse("t.toml", &lines(&[WORKERS, "[icmp]", "errors_per_s = 10", "error_burst = 2"]), &facts());
        assert_eq!(cfg.expect("valid").icmp, IcmpConfig { errors_per_s: 10, error_burst: 2 });
        one(&lines(&[WORKERS, "[icmp]", "errors_per_s = 0"]), 5, 16, "[icmp] errors_per_s 0 must be 1 to 1000000");
        one(&lines(&[WORKERS, "[icmp]", "error_burst = 100001"]), 5, 15, "must be 1 to 100000");
        one(&lines(&[WORKERS, "[icmp]", "errors_per_s = -5"]), 5, 16, "must be 1 to");
    }

    #[test]
    fn underlay_for_the_store_topology() {
        let store = ["", "[topology]", "source = \"store\"", "", "[underlay]"];
        let mut ls = ring_pair().to_vec();
        ls.extend(store);
        ls.extend(["port = \"b\"", "address = \"192.168.7.1/24\"", "gateway = \"192.168.7.254\"", "vxlan_port = 8472"]);
        let cfg = parse("t.toml", &with_workers(&ls), &facts()).expect("valid");
        let u = cfg.underlay.expect("underlay");
        assert_eq!((u.port.as_str(), u.address.to_string(), u.prefix_len), ("b", "192.168.7.1".into(), 24));
        assert_eq!((u.gateway, u.vxlan_port), (Some("192.168.7.254".parse().unwrap()), 8472));

        let problems_of = |extra: &[&str]| {
            let mut ls = ring_pair().to_vec();
            ls.extend(store);
            ls.extend(extra);
            problems(&with_workers(&ls)).into_iter().map(|p| p.message).collect::<Vec<_>>()
        };
        let has = |list: Vec<String>, needle: &str| {
            assert!(list.iter().any(|m| m.contains(needle)), "{list:?} lacks {needle}")
        };
        has(problems_of(&["address = \"192.168.7.1/24\""]), "needs port");
        has(problems_of(&["port = \"zz\"", "address = \"192.168.7.1/24\""]), "not a [[port]] name");
        has(problems_of(&["port = \"b\"", "address = \"192.168.7.0/24\""]), "not an IPv4 host address");
        has(
            problems_of(&["port = \"b\"", "address = \"192.168.7.1/24\"", "gateway = \"10.0.0.1\""]),
            "on the underlay subnet",
        );
        has(problems_of(&["port = \"b\"", "address = \"192.168.7.1/24\"", "vxlan_port = 0"]), "not a UDP port");
        // With a topology file, the file has the underlay.
        let mut ls = ring_pair().to_vec();
        ls.extend([
            "",
            "[topology]",
            "file = \"t.toml\"",
            "",
            "[underlay]",
            "port = \"b\"",
            "address = \"192.168.7.1/24\"",
        ]);
        let list: Vec<String> = problems(&with_workers(&ls)).into_iter().map(|p| p.message).collect();
        has(list, "a topology file has its own");
    }

    #[test]
    fn topology_from_the_store() {
        let mut ls = ring_pair().to_vec();
        ls.extend(["", "[[port]]", "name = \"c\"", "devargs = \"net_ring2\"", "", "[topology]", "source = \"store\""]);
        let cfg = parse("t.toml", &with_workers(&ls), &facts()).expect("valid");
        assert_eq!(cfg.topology, TopologySource::Store);
    }

    #[test]
    fn rest_store_and_auth_defaults() {
        let cfg = parse("t.toml", WORKERS, &facts()).expect("valid");
        assert_eq!(cfg.rest.listen, DEFAULT_REST_LISTEN.parse().unwrap());
        assert_eq!(cfg.store.path, PathBuf::from(DEFAULT_STORE_PATH));
        assert_eq!(cfg.auth, Auth::Local(Vec::new()));
    }

    #[test]
    fn rest_store_and_auth_values() {
        let hash = control::LocalAuth::hash_password("pw").unwrap();
        let text = lines(&[
            WORKERS,
            "[rest]",
            "listen = \"[::1]:9000\"",
            "[store]",
            "path = \"s.redb\"",
            "[[auth.account]]",
            "user = \"alice\"",
            &format!("password_hash = \"{hash}\""),
            "tenant = \"t1\"",
            "role = \"tenant\"",
        ]);
        let cfg = parse("t.toml", &text, &facts()).expect("valid");
        assert_eq!(cfg.rest.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(cfg.store.path, PathBuf::from("s.redb"));
        let want = Account { user: "alice".into(), password_hash: hash, tenant: "t1".into(), admin: false };
        assert_eq!(cfg.auth, Auth::Local(vec![want]));
        let mock = lines(&[WORKERS, "[auth]", "provider = \"mock\""]);
        assert_eq!(parse("t.toml", &mock, &facts()).expect("valid").auth, Auth::Mock);
    }

    #[test]
    fn metrics_listen_is_optional_and_its_own() {
        assert_eq!(parse("t.toml", WORKERS, &facts()).expect("valid").metrics, None, "off by default");
        let on = lines(&[WORKERS, "[metrics]", "listen = \"127.0.0.1:9464\""]);
        assert_eq!(parse("t.toml", &on, &facts()).expect("valid").metrics, Some("127.0.0.1:9464".parse().unwrap()));
        one(
            &lines(&[WORKERS, "[metrics]", "listen = \"9464\""]),
            5,
            10,
            "[metrics] listen \"9464\" is not an ADDR:PORT",
        );
        one(&lines(&[WORKERS, "[metrics]", "port = 9464"]), 5, 1, "unknown field `port`");
        one(&lines(&[WORKERS, "[metrics]"]), 4, 1, "[metrics] needs listen");
        one(
            &lines(&[WORKERS, "[rest]", "listen = \"0.0.0.0:8181\"", "[metrics]", "listen = \"0.0.0.0:8181\""]),
            7,
            10,
            "is also [rest] listen",
        );
    }

    #[test]
    fn rest_store_and_auth_problems() {
        one(&lines(&[WORKERS, "[rest]", "listen = \"8181\""]), 5, 10, "is not an ADDR:PORT");
        one(&lines(&[WORKERS, "[store]", "kind = \"zookeeper\""]), 5, 8, "needs hosts");
        one(&lines(&[WORKERS, "[store]", "kind = \"zookeeper\"", "hosts = \"zk\""]), 6, 9, "not a list of host:port");
        one(
            &lines(&[WORKERS, "[store]", "kind = \"zookeeper\"", "hosts = \"zk:2181\"", "root = \"gw/\""]),
            7,
            8,
            "absolute path",
        );
        one(
            &lines(&[WORKERS, "[store]", "kind = \"zookeeper\"", "hosts = \"zk:2181\"", "path = \"s.redb\""]),
            7,
            8,
            "path is for",
        );
        one(
            &lines(&[WORKERS, "[store]", "kind = \"zookeeper\"", "hosts = \"zk:2181\"", "session_timeout_ms = 0"]),
            7,
            22,
            "positive",
        );
        let zk = lines(&[WORKERS, "[store]", "kind = \"zookeeper\"", "hosts = \"a:2181, b:2181\"", "root = \"/lab\""]);
        let zk = parse("t.toml", &zk, &facts()).expect("valid").store.zookeeper.expect("zookeeper");
        assert_eq!((zk.hosts.as_str(), zk.root.as_str()), ("a:2181,b:2181", "/lab"));
        assert_eq!(zk.session_timeout, std::time::Duration::from_secs(30));
        one(&lines(&[WORKERS, "[store]", "kind = \"etcd\""]), 5, 8, "unknown");
        one(&lines(&[WORKERS, "[store]", "hosts = \"zk:2181\""]), 5, 9, "for kind = \"zookeeper\"");
        one(&lines(&[WORKERS, "[store]", "path = \"\""]), 5, 8, "path is empty");
        one(&lines(&[WORKERS, "[auth]", "provider = \"ldap\""]), 5, 12, "unknown");
        let account = ["[[auth.account]]", "user = \"a\"", "password_hash = \"x\"", "tenant = \"t\""];
        let mut ls = vec![WORKERS];
        ls.extend(account);
        let list = problems(&lines(&ls));
        let at: Vec<_> = list.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(4, 1), (6, 17)], "{list:#?}");
        assert!(list[0].message.contains("needs role"), "{list:#?}");
        assert!(list[1].message.contains("midogw hash-password"), "{list:#?}");
    }

    /// A throwaway directory with a self-signed certificate, its key and another key.
    struct TlsFiles(PathBuf);

    impl TlsFiles {
        fn new(tag: &str) -> TlsFiles {
            let dir = std::env::temp_dir().join(format!("midogw-config-tls-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
            std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
            std::fs::write(dir.join("other.pem"), rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
            std::fs::write(dir.join("junk.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
            std::fs::write(dir.join("empty.pem"), "no PEM here\n").unwrap();
            TlsFiles(dir)
        }
        fn path(&self, name: &str) -> String {
            self.0.join(name).display().to_string()
        }
        fn config(&self, cert: &str, key: &str) -> String {
            let (cert, key) = (self.path(cert), self.path(key));
            lines(&[
                WORKERS,
                "[rest.https]",
                "listen = \"127.0.0.1:8443\"",
                &format!("cert = \"{cert}\""),
                &format!("key = \"{key}\""),
            ])
        }
    }

    impl Drop for TlsFiles {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn rest_https_values() {
        let files = TlsFiles::new("ok");
        let cfg = parse("t.toml", &files.config("cert.pem", "key.pem"), &facts()).expect("valid");
        let https = cfg.rest.https.expect("[rest.https]");
        assert_eq!(https.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(https.cert, files.0.join("cert.pem"));
        assert_eq!(https.key, files.0.join("key.pem"));
        assert_eq!(parse("t.toml", WORKERS, &facts()).expect("valid").rest.https, None);
        // Relative paths start at the config file's directory.
        let text =
            lines(&[WORKERS, "[rest.https]", "listen = \"[::1]:8443\"", "cert = \"cert.pem\"", "key = \"key.pem\""]);
        let shown = files.0.join("midogw.toml").display().to_string();
        let cfg = parse(&shown, &text, &facts()).expect("relative paths");
        assert_eq!(cfg.rest.https.unwrap().key, files.0.join("key.pem"));
    }

    #[test]
    fn rest_https_problems() {
        let files = TlsFiles::new("bad");
        // Lines: 1-2 [workers], 3 blank, 4 [rest.https], 5 listen, 6 cert, 7 key.
        one(&files.config("missing.pem", "key.pem"), 6, 8, "cannot read it");
        one(&files.config("junk.pem", "key.pem"), 6, 8, "bad PEM");
        one(&files.config("empty.pem", "key.pem"), 6, 8, "no PEM CERTIFICATE");
        one(&files.config("cert.pem", "missing.pem"), 7, 7, "cannot read it");
        one(&files.config("cert.pem", "cert.pem"), 7, 7, "no usable PEM private key");
        one(&files.config("cert.pem", "other.pem"), 7, 7, "the private key is not the certificate's");
        one(&lines(&[WORKERS, "[rest.https]", "listen = \"127.0.0.1:8443\""]), 4, 1, "needs cert = \"PATH\"");
        let bad_listen = files.config("cert.pem", "key.pem").replace("127.0.0.1:8443", "8443");
        one(&bad_listen, 5, 10, "[rest.https] listen \"8443\" is not an ADDR:PORT");
        one(&files.config("cert.pem", "key.pem").replace(&files.path("key.pem"), ""), 7, 7, "key is empty");
        let same = lines(&[
            WORKERS,
            "[rest]",
            "listen = \"127.0.0.1:8443\"",
            "[rest.https]",
            "listen = \"127.0.0.1:8443\"",
            &format!("cert = \"{}\"", files.path("cert.pem")),
            &format!("key = \"{}\"", files.path("key.pem")),
        ]);
        one(&same, 6, 1, "give HTTPS its own port");
    }

    #[test]
    fn duplicate_cores() {
        one(&lines(&["[workers]", "cores = [1, 2, 1]"]), 2, 16, "core 1 is listed twice");
    }

    #[test]
    fn core_equal_to_main_core() {
        one(&lines(&["[eal]", "main_core = 1", "[workers]", "cores = [1]"]), 4, 10, "also [eal] main_core");
    }

    #[test]
    fn offline_cores() {
        one(&lines(&["[workers]", "cores = [1, 7]"]), 2, 13, "core 7 is not an online CPU (online CPUs: 0-2)");
        one(&lines(&["[eal]", "main_core = 5", "[workers]", "cores = [1]"]), 2, 13, "main_core 5 is not an online CPU");
    }

    #[test]
    fn a_config_without_ports_needs_no_workers_and_no_eal_memory() {
        let facts = SystemFacts { hugepage_free_bytes: 0, ..facts() };
        let cfg = parse("empty.toml", "", &facts).expect("an empty file is a control-plane-only appliance");
        assert!(cfg.ports.is_empty() && cfg.workers.is_empty());
        // Hugepages only matter once there are ports to forward between.
        let text = lines(&[
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_ring0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_ring1\"",
        ]) + WORKERS;
        let problems = parse("ports.toml", &text, &facts).expect_err("no hugepages for the pool");
        assert!(problems.list.iter().any(|p| p.message.contains("too few hugepages")), "{problems}");
    }

    #[test]
    fn workers_missing_or_empty() {
        let two_ports = [
            "[eal]",
            "args = [\"--no-huge\", \"-m\", \"512\"]",
            "[[port]]",
            "name = \"a\"",
            "devargs = \"net_ring0\"",
            "[[port]]",
            "name = \"b\"",
            "devargs = \"net_ring1\"",
        ];
        one(&lines(&two_ports), 1, 1, "missing [workers]");
        one(&lines(&["[workers]"]), 1, 1, "needs cores");
        one(&lines(&["[workers]", "cores = []"]), 2, 9, "cores is empty");
    }

    #[test]
    fn too_few_hugepages() {
        let mut f = facts();
        f.hugepage_free_bytes = 64 << 20;
        let text = lines(&["[mempool]", "mbufs = 8191", "[workers]", "cores = [1]"]) + RING_PORTS;
        let Err(p) = parse("t.toml", &text, &f) else {
            panic!("expected a hugepage problem");
        };
        assert_eq!(p.list.len(), 1, "{p}");
        let need_mib = sizing::required_memory_bytes(8191).div_ceil(MIB);
        assert_eq!((p.list[0].line, p.list[0].column), (2, 9));
        assert!(
            p.list[0].message.starts_with(&format!("too few hugepages: 64 MiB free, {need_mib} MiB needed")),
            "{p}"
        );
        assert!(p.list[0].message.contains("\"--no-huge\", \"-m\""), "{p}");
    }

    #[test]
    fn too_little_no_huge_memory() {
        let need_mib = sizing::required_memory_bytes(8191).div_ceil(MIB);
        let text =
            lines(&["[eal]", "args = [\"--no-huge\", \"-m\", \"128\"]", "[workers]", "cores = [1]"]) + RING_PORTS;
        one(
            &text,
            2,
            28,
            &format!(
                "too little memory: the mbuf pool of 8191 jumbo mbufs needs {need_mib} MiB, \
                 [eal] args give 128 MiB (-m)"
            ),
        );
        let text = lines(&["[eal]", "args = [\"--no-huge\", \"-m=100\"]", WORKERS]) + RING_PORTS;
        one(&text, 2, 22, "args give 100 MiB (-m)");
        // --no-huge alone gives EAL's 64 MiB default.
        let text = lines(&["[eal]", "args = [\"--no-huge\"]", WORKERS]) + RING_PORTS;
        one(&text, 2, 9, "args give 64 MiB");
        let text = lines(&["[eal]", "args = [\"--no-huge\", \"-m\", \"lots\"]", WORKERS]) + RING_PORTS;
        one(&text, 2, 28, "-m needs the memory size in MiB");
        let text = lines(&["[eal]", "args = [\"--no-huge\", \"--socket-mem=4096\"]", WORKERS]) + RING_PORTS;
        one(&text, 2, 22, "--socket-mem cannot be used with --no-huge");
    }

    #[test]
    fn mbufs_too_small() {
        one(
            &lines(&["[mempool]", "mbufs = 1000", "[workers]", "cores = [1]"]),
            2,
            9,
            "too small to fill the descriptor rings",
        );
    }

    #[test]
    fn managed_eal_args() {
        let text = lines(&[
            "[eal]",
            "args = [\"-l\", \"0-1\", \"--vdev=net_ring0\", \"--no-huge\", \"-m\", \"1024\",",
            "        \"--file-prefix\", \"x\", \"-a0000:03:00.0\", \"--log-level=8\"]",
            "[workers]",
            "cores = [1]",
        ]);
        let list = problems(&text);
        let at: Vec<_> = list.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(2, 9), (2, 22), (3, 9), (3, 31)], "{list:#?}");
        assert!(list[0].message.contains("[workers] cores"), "{}", list[0].message);
        assert!(list[1].message.contains("[[port]] devargs"), "{}", list[1].message);
        assert!(list[2].message.contains("[eal] file_prefix"), "{}", list[2].message);
        assert!(list[3].message.contains("-a is set by midogw"), "{}", list[3].message);
    }

    /// EAL parses its options with getopt_long, which takes any unambiguous abbreviation of a long
    /// option: `--file-pre=x` is `--file-prefix=x` to EAL, and given after midogw's own options it
    /// wins, so `[eal] file_prefix` would be silently ignored.
    #[test]
    fn managed_eal_args_abbreviated() {
        let text = lines(&[
            "[eal]",
            "args = [\"--file-pre=x\", \"--main\", \"2\", \"--lcore=0-1\", \"--vde=net_ring0\", \"--no-huge\",",
            "        \"--huge-dir\", \"/mnt/huge\", \"--log-level=8\", \"--\"]",
            "[workers]",
            "cores = [1]",
        ]);
        let list = problems(&text);
        let at: Vec<_> = list.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(2, 9), (2, 25), (2, 40), (2, 55)], "{list:#?}");
        assert!(list[0].message.contains("--file-prefix is set by midogw"), "{}", list[0].message);
        assert!(list[1].message.contains("--main-lcore is set by midogw"), "{}", list[1].message);
        assert!(list[2].message.contains("--lcores is set by midogw"), "{}", list[2].message);
        assert!(list[3].message.contains("--vdev is set by midogw"), "{}", list[3].message);
    }

    #[test]
    fn unknown_key_reports_its_line() {
        let text = lines(&["[eal]", "main_core = 0", "", "[[port]]", "name = \"a\"", "speed = 10"]);
        one(&text, 6, 1, "unknown field `speed`");
        one(&lines(&["[eal]", "[workers]", "cores = [1]", "[extra]"]), 4, 2, "extra");
    }

    #[test]
    fn syntax_error_reports_its_location() {
        let text = lines(&["[workers]", "cores = [1]", "[[port]]", "name = \"a", "[eal]"]);
        let list = problems(&text);
        assert_eq!(list.len(), 1, "{list:#?}");
        assert_eq!(list[0].line, 4, "{list:#?}");
        one("[workers]\ncores = [1]\nmain_core = \n", 3, 13, "");
    }

    #[test]
    fn single_bracket_port_gets_a_hint() {
        let text = lines(&["[port]", "name = \"a\"", "devargs = \"net_ring0\"", WORKERS]);
        one(&text, 1, 1, "[[port]] (two brackets)");
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let text = lines(&[
            "[eal]",                                   // 1
            "args = [\"--lcores=1\"]",                 // 2
            "main_core = 0",                           // 3
            "",                                        // 4
            "[mempool]",                               // 5
            "mbufs = 100",                             // 6
            "",                                        // 7
            "[[port]]",                                // 8
            "name = \"up0\"",                          // 9
            "devargs = \"0000:09:00.0\"",              // 10
            "",                                        // 11
            "[[port]]",                                // 12
            "name = \"up0\"",                          // 13
            "devargs = \"net_af_packet0,iface=nope\"", // 14
            "mtu = 20000",                             // 15
            "",                                        // 16
            "[[port]]",                                // 17
            "name = \"x\"",                            // 18
            "devargs = \"what\"",                      // 19
            "",                                        // 20
            "[workers]",                               // 21
            "cores = [0, 9, 1, 1]",                    // 22
        ]);
        let Err(problems) = parse("gw.toml", &text, &facts()) else {
            panic!("expected problems");
        };
        let got: Vec<_> =
            problems.list.iter().map(|p| (p.line, p.message.split(':').next().unwrap_or("").to_string())).collect();
        let lines_only: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines_only, [2, 6, 10, 13, 14, 15, 17, 19, 22, 22, 22], "{problems}");
        let shown = problems.to_string();
        assert_eq!(shown.lines().count(), 11, "{shown}");
        assert!(shown.starts_with("gw.toml:2:9: EAL option --lcores"), "{shown}");
        assert!(shown.contains("gw.toml:10:11: unknown port: no PCI device 0000:09:00.0"), "{shown}");
        assert!(shown.contains("gw.toml:14:33: unknown port: network interface nope"), "{shown}");
        assert!(shown.contains("gw.toml:22:10: core 0 is also [eal] main_core"), "{shown}");
        assert!(shown.contains("gw.toml:22:13: core 9 is not an online CPU"), "{shown}");
        assert!(shown.contains("gw.toml:22:19: core 1 is listed twice"), "{shown}");
    }

    #[test]
    fn unreadable_file_is_a_problem_at_zero() {
        let Err(p) = load(Path::new("/nonexistent/midogw.toml"), &facts()) else {
            panic!("expected an error");
        };
        assert_eq!((p.list[0].line, p.list[0].column), (0, 0));
        assert!(p.to_string().starts_with("/nonexistent/midogw.toml:0:0: cannot read"));
    }

    #[test]
    fn example_file_parses() {
        let mut permissive = facts();
        permissive.online_cpus = (0..64).collect();
        permissive.hugepage_free_bytes = u64::MAX;
        permissive.dpdk_drivers = None;
        permissive.pci_devices.extend(["0000:03:00.0".into(), "0000:03:00.1".into()]);
        permissive.net_interfaces.extend(["veth0".into(), "veth1".into(), "eth0".into()]);
        let text = include_str!("midogw.example.toml");
        if let Err(p) = parse("midogw.example.toml", text, &permissive) {
            panic!("{p}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), Some(vec![0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(format_cpu_list(&[6, 0, 1, 2, 3, 8, 9]), "0-3,6,8-9");
        assert_eq!(format_cpu_list(&[]), "none");
        let meminfo = "HugePages_Total:     512\nHugePages_Free:      300\nHugepagesize:       2048 kB\n";
        assert_eq!(hugepage_free_bytes(meminfo), 300 * 2 * MIB);
        // 1 GiB pages count when a hugetlbfs is mounted for them (bare metal often has only those).
        let pools = [(2048, 0), (1 << 20, 4)];
        let gib = "hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0\n";
        let none_free = "HugePages_Free:      0\nHugepagesize:       2048 kB\n";
        assert_eq!(mounted_hugepage_free_bytes(&pools, gib, none_free), 4 << 30);
        // Both sizes mounted (the default one without a pagesize option): both count.
        let both = format!("{gib}hugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0\n");
        assert_eq!(
            mounted_hugepage_free_bytes(&[(2048, 300), (1 << 20, 4)], &both, meminfo),
            (4 << 30) + 300 * 2 * MIB
        );
        // A size nobody mounted is of no use to DPDK.
        let only_2m = "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";
        assert_eq!(mounted_hugepage_free_bytes(&[(2048, 300), (1 << 20, 4)], only_2m, meminfo), 300 * 2 * MIB);
        // Nothing mounted: the default size's free pages, as before (the check's hint says to mount).
        assert_eq!(mounted_hugepage_free_bytes(&pools, "", meminfo), 300 * 2 * MIB);
        assert_eq!(
            (size_kib("2M"), size_kib("1G"), size_kib("2048k"), size_kib("2097152")),
            (Some(2048), Some(1 << 20), Some(2048), Some(2048))
        );
        // The pools as sysfs lists them.
        let dir = std::env::temp_dir().join(format!("mgw-hugepages-{}", std::process::id()));
        for (name, free) in [("hugepages-2048kB", "12\n"), ("hugepages-1048576kB", "3\n")] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("free_hugepages"), free).unwrap();
        }
        let mut found = hugepage_pools(&dir);
        found.sort_unstable();
        assert_eq!(found, vec![(2048, 12), (1 << 20, 3)]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(drivers_of_library("bond"), ["net_bonding"]);
    }

    #[test]
    fn probe_finds_this_machine() {
        let f = SystemFacts::probe();
        assert!(!f.online_cpus.is_empty());
        let drivers = f.dpdk_drivers.expect("DPDK plugin directory");
        assert!(drivers.contains("net_ring"), "{drivers:?}");
        assert!(f.net_interfaces.contains("lo"));
    }
}
