//! Ethernet ports: attach (PCI or virtual device), configure (queues, RSS, MTU, LRO off), start,
//! read counters and link state, stop and close on drop.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::mbuf::Burst;
use crate::mempool::Mempool;
use crate::ring::Ring;
use crate::sizing;

/// How a port's device comes to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A PCI NIC, probed by EAL at start-up (it is on EAL's allow-list); the ethdev is named after
    /// its address.
    Pci {
        /// `DDDD:BB:DD.F`.
        address: String,
    },
    /// A DPDK virtual device created by hotplug from its devargs (`net_af_packet0,iface=veth0`);
    /// the ethdev is named after the part before the first comma.
    Vdev {
        /// Driver, instance and arguments, as for EAL's `--vdev`.
        devargs: String,
    },
}

impl Device {
    /// The name DPDK gives the ethdev.
    pub fn ethdev_name(&self) -> &str {
        match self {
            Device::Pci { address } => address,
            Device::Vdev { devargs } => devargs.split(',').next().unwrap_or(devargs),
        }
    }
}

/// What a port is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Operator's name for the port (`up0`), used in logs and errors.
    pub name: String,
    /// IP MTU; the port accepts frames of MTU + Ethernet header + one VLAN tag.
    pub mtu: u16,
    /// RX queues; more than one spreads flows with symmetric RSS.
    pub rx_queues: u16,
    /// TX queues: one per worker, so workers never share a queue.
    pub tx_queues: u16,
}

/// Link state as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Carrier present.
    pub up: bool,
    /// Speed in Mb/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic counters of one port (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped because RX queues were full.
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The symmetric Toeplitz key (0x6d5a repeated): a flow and its reverse hash to the same queue,
/// so both directions of a connection reach the core that owns its state.
pub fn symmetric_rss_key(len: usize) -> Vec<u8> {
    (0..len).map(|i| if i % 2 == 0 { 0x6d } else { 0x5a }).collect()
}

/// The part of every RSS redirection table that decides a queue: pmd fills a table of any size
/// (a multiple of this, or it is not programmed) by repeating its first [`RSS_SPREAD`] entries, so
/// on every port a flow's queue depends on `hash mod RSS_SPREAD` alone, whatever the table's size
/// (82599: 128 entries; X710, E810 and mlx5: 512 or more). Two ports with the same number of
/// queues then send a connection to the same worker, which the pipeline's hand-off relies on.
pub const RSS_SPREAD: usize = 64;

/// The driver whose rings may hold frames from before the port started (see
/// `Port::discard_frames_from_before_start`).
const AF_PACKET_DRIVER: &str = "net_af_packet";

/// The RX queue pmd puts at entry `entry` of a redirection table for `queues` queues (0 is taken
/// as 1): `(entry mod RSS_SPREAD) mod queues`.
pub fn reta_queue(entry: usize, queues: u16) -> u16 {
    (entry % RSS_SPREAD % usize::from(queues.max(1))) as u16
}

/// Refuses a port whose device or any RX queue has LRO on. Pure, so it is testable without a NIC.
pub fn check_lro_disabled(port: &str, device_offloads: u64, queue_offloads: &[Option<u64>]) -> Result<()> {
    let lro = u64::from(ffi::RTE_ETH_RX_OFFLOAD_TCP_LRO);
    if device_offloads & lro != 0 {
        return Err(Error::LroEnabled { port: port.into(), where_: "the device".into() });
    }
    for (queue, offloads) in queue_offloads.iter().enumerate() {
        if offloads.is_some_and(|o| o & lro != 0) {
            return Err(Error::LroEnabled { port: port.into(), where_: format!("RX queue {queue}") });
        }
    }
    Ok(())
}

/// How a port picks the RX queue (so the worker) of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// One RX queue: every frame on it.
    OneQueue,
    /// RSS with the symmetric key ([`symmetric_rss_key`]) and the redirection table programmed
    /// with [`reta_queue`]: a connection's queue follows from its tuple, the same way on every
    /// such port, as the pipeline's owner rule assumes.
    SymmetricRss,
    /// Several RX queues picked by the driver's own rule (no RSS, or no redirection table it
    /// would take: `net_af_packet` spreads by the kernel's fanout hash; the test rings by the
    /// test's choice).
    Driver,
}

/// A configured, started port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port<'a> {
    id: u16,
    name: String,
    config: PortConfig,
    spread: Spread,
    /// Whether the device verifies IPv4 header checksums on receive (`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`).
    rx_ipv4_checksum: bool,
    queues_taken: AtomicBool,
    /// The port's device is a virtual one this process created (`rte_dev_probe`, or the ring
    /// driver's own vdev): removed after closing, so that its name (and whatever it holds: a
    /// socket, an interface, ring pointers) does not outlive the port.
    remove_device: bool,
    _borrows: PhantomData<&'a ()>,
}

impl<'a> Port<'a> {
    /// Attaches the device and brings the port up with `config`, taking RX buffers from `pool`.
    pub fn open(eal: &'a Eal, pool: &'a Mempool<'a>, device: &Device, config: &PortConfig) -> Result<Port<'a>> {
        let name = &config.name;
        if let Device::Vdev { devargs } = device {
            let c_devargs = CString::new(devargs.as_str()).map_err(|_| Error::InvalidName {
                what: "devargs",
                value: devargs.clone(),
                why: "contains a NUL byte",
            })?;
            // SAFETY: valid C string for the call; EAL is running.
            let rc = unsafe { ffi::rte_dev_probe(c_devargs.as_ptr()) };
            if rc < 0 {
                return Err(Error::PortDevice {
                    port: name.clone(),
                    detail: format!(
                        "DPDK could not create virtual device {devargs:?}: {} (is the driver name right, and does the interface it names exist?)",
                        RteErrno(-rc)
                    ),
                });
            }
        }
        let id = port_id_by_name(device.ethdev_name()).ok_or_else(|| Error::PortDevice {
            port: name.clone(),
            detail: match device {
                Device::Pci { address } => format!(
                    "no DPDK port at PCI address {address} (does the device exist, and is it bound to vfio-pci or uio?)"
                ),
                Device::Vdev { devargs } => format!("virtual device {devargs:?} created no ethdev"),
            },
        })?;
        Self::setup(eal, pool, id, config, matches!(device, Device::Vdev { .. }))
    }

    /// Makes a port out of DPDK rings (`net_ring`): what is enqueued on `rx` is received, what is
    /// sent comes out of `tx`. Tests and the traffic generator wire ports together this way.
    pub fn from_rings(
        eal: &'a Eal,
        pool: &'a Mempool<'a>,
        rx: &'a Ring<'a>,
        tx: &'a Ring<'a>,
        config: &PortConfig,
    ) -> Result<Port<'a>> {
        let rx = vec![rx; usize::from(config.rx_queues)];
        let tx = vec![tx; usize::from(config.tx_queues)];
        Self::from_ring_queues(eal, pool, &rx, &tx, config)
    }

    /// [`Port::from_rings`] with a ring per queue: RX queue `q` receives what is enqueued on
    /// `rx[q]`, TX queue `q` sends into `tx[q]` (`config`'s queue counts must match), so a test
    /// decides which worker's queue a frame arrives on, as RSS would.
    pub fn from_ring_queues(
        eal: &'a Eal,
        pool: &'a Mempool<'a>,
        rx: &[&'a Ring<'a>],
        tx: &[&'a Ring<'a>],
        config: &PortConfig,
    ) -> Result<Port<'a>> {
        let c_name = CString::new(config.name.as_str()).map_err(|_| Error::InvalidName {
            what: "port name",
            value: config.name.clone(),
            why: "contains a NUL byte",
        })?;
        if rx.len() != usize::from(config.rx_queues) || tx.len() != usize::from(config.tx_queues) {
            return Err(Error::PortDevice {
                port: config.name.clone(),
                detail: format!(
                    "{} RX and {} TX rings for {} RX and {} TX queues",
                    rx.len(),
                    tx.len(),
                    config.rx_queues,
                    config.tx_queues
                ),
            });
        }
        let rx_rings: Vec<_> = rx.iter().map(|r| r.as_ptr()).collect();
        let tx_rings: Vec<_> = tx.iter().map(|r| r.as_ptr()).collect();
        // SAFETY: the ring arrays are valid for the call and the rings outlive the port ('a).
        let rc = unsafe {
            ffi::rte_eth_from_rings(
                c_name.as_ptr(),
                rx_rings.as_ptr(),
                rx_rings.len() as u32,
                tx_rings.as_ptr(),
                tx_rings.len() as u32,
                eal.socket_id().max(0) as u32,
            )
        };
        if rc < 0 {
            return Err(Error::PortDevice {
                port: config.name.clone(),
                detail: format!("cannot create ring port: {}", RteErrno(ffi::errno())),
            });
        }
        Self::setup(eal, pool, rc as u16, config, true)
    }

    /// Configures and starts port `id`. `remove_device`: the device is a vdev this process
    /// created, removed again when the port fails here or is dropped.
    fn setup(
        eal: &'a Eal,
        pool: &'a Mempool<'a>,
        id: u16,
        config: &PortConfig,
        remove_device: bool,
    ) -> Result<Port<'a>> {
        let name = config.name.clone();
        let fail = |step: &'static str, rc: i32| Error::PortSetup {
            port: name.clone(),
            step,
            errno: RteErrno(ffi::neg_errno(rc)),
        };

        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid out-parameter; `id` names an existing port.
        let rc = unsafe { ffi::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(fail("rte_eth_dev_info_get", rc));
        }
        // Until the port exists (below), a failure removes the device this process created.
        let device = info.device;
        let abandon = |e: Error| {
            if remove_device {
                // The device is one this process created, and nothing uses it: its ethdev was
                // never configured.
                remove(device, &config.name);
            }
            e
        };
        let capability = |detail: String| abandon(Error::PortCapability { port: name.clone(), detail });
        if config.rx_queues == 0 || config.rx_queues > info.max_rx_queues {
            return Err(capability(format!(
                "{} RX queues asked, the device has 1..={}",
                config.rx_queues, info.max_rx_queues
            )));
        }
        if config.tx_queues == 0 || config.tx_queues > info.max_tx_queues {
            return Err(capability(format!(
                "{} TX queues needed (one per worker), the device has 1..={}",
                config.tx_queues, info.max_tx_queues
            )));
        }
        if config.mtu < info.min_mtu || config.mtu > info.max_mtu {
            return Err(capability(format!(
                "MTU {} outside the device's range {}..={}",
                config.mtu, info.min_mtu, info.max_mtu
            )));
        }
        // ethdev checks MTU plus Ethernet overhead against the largest frame the device receives.
        let frame = u32::from(config.mtu) + 18;
        if info.max_rx_pktlen != 0 && frame > info.max_rx_pktlen {
            return Err(capability(format!(
                "MTU {} needs {frame}-byte frames, the {} driver receives at most {} (MTU {})",
                config.mtu,
                driver_name(&info),
                info.max_rx_pktlen,
                info.max_rx_pktlen.saturating_sub(18)
            )));
        }
        if sizing::max_frame(config.mtu) + u32::from(sizing::HEADROOM) > u32::from(pool.data_room()) {
            return Err(capability(format!(
                "MTU {} does not fit the pool's {}-byte mbufs",
                config.mtu,
                pool.data_room()
            )));
        }

        let mut conf = ffi::rte_eth_conf::default();
        conf.rxmode.mtu = u32::from(config.mtu);
        // LRO (and every other RX offload that could change a frame) stays off: frames are
        // forwarded exactly as received. IPv4 header checksum verification only flags the mbuf
        // (RTE_MBUF_F_RX_IP_CKSUM_*), and spares the worker the check RFC 1812 5.2.2 asks for.
        let ipv4_checksum = u64::from(ffi::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
        let rx_ipv4_checksum = info.rx_offload_capa & ipv4_checksum != 0;
        conf.rxmode.offloads = if rx_ipv4_checksum { ipv4_checksum } else { 0 };
        conf.txmode.offloads = 0;
        let mut rss_key = symmetric_rss_key(usize::from(info.hash_key_size.max(40)));
        let rss_types =
            u64::from(ffi::RTE_ETH_RSS_IP | ffi::RTE_ETH_RSS_TCP | ffi::RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
        let rss = config.rx_queues > 1 && rss_types != 0;
        if rss {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = rss_key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = rss_key.len() as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_types;
        } else if config.rx_queues > 1 {
            tracing::warn!(port = %name, "device offers no RSS: flows are spread by the device's own policy");
        }
        // SAFETY: `conf` (and the key it points to) is valid for the call; the port is stopped.
        let rc = unsafe { ffi::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf) };
        if rc != 0 {
            return Err(abandon(fail("rte_eth_dev_configure", rc)));
        }
        // The port exists in DPDK from here on: close it if anything below fails.
        let mut port = Port {
            id,
            name: name.clone(),
            config: config.clone(),
            spread: if config.rx_queues > 1 { Spread::Driver } else { Spread::OneQueue },
            rx_ipv4_checksum,
            queues_taken: AtomicBool::new(false),
            remove_device,
            _borrows: PhantomData,
        };

        // SAFETY: the port is configured and stopped.
        let rc = unsafe { ffi::rte_eth_dev_set_mtu(id, config.mtu) };
        if rc == -libc::ENOTSUP {
            tracing::debug!(port = %name, "driver has no MTU control; frame size is bounded by the mbuf size");
        } else if rc != 0 {
            return Err(fail("rte_eth_dev_set_mtu", rc));
        }

        let socket = eal.socket_id().max(0) as u32;
        for queue in 0..config.rx_queues {
            let mut rxconf = info.default_rxconf;
            rxconf.offloads = 0;
            // SAFETY: rxconf and the pool are valid; the pool outlives the port ('a).
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(id, queue, sizing::RX_DESCRIPTORS, socket, &rxconf, pool.as_ptr())
            };
            if rc != 0 {
                return Err(fail("rte_eth_rx_queue_setup", rc));
            }
        }
        for queue in 0..config.tx_queues {
            let mut txconf = info.default_txconf;
            txconf.offloads = 0;
            // SAFETY: txconf is valid for the call.
            let rc = unsafe { ffi::rte_eth_tx_queue_setup(id, queue, sizing::TX_DESCRIPTORS, socket, &txconf) };
            if rc != 0 {
                return Err(fail("rte_eth_tx_queue_setup", rc));
            }
        }
        port.check_lro_disabled()?;

        // A gateway port receives for every MAC behind it; drivers without the notion refuse.
        // SAFETY: valid configured port.
        let rc = unsafe { ffi::rte_eth_promiscuous_enable(id) };
        if rc != 0 && rc != -libc::ENOTSUP {
            tracing::warn!(port = %name, errno = %RteErrno(-rc), "cannot enable promiscuous mode");
        }
        // SAFETY: valid configured port with all queues set up.
        let rc = unsafe { ffi::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(fail("rte_eth_dev_start", rc));
        }
        let discarded =
            if driver_name(&info) == AF_PACKET_DRIVER { port.discard_frames_from_before_start() } else { 0 };
        if discarded != 0 {
            tracing::info!(port = %name, frames = discarded, "discarded what the driver's sockets took in before the port started");
        }
        // Some drivers take a redirection table only once started.
        let rss_table = if rss { port.program_rss_table(info.reta_size) } else { 0 };
        if rss_table != 0 {
            port.spread = Spread::SymmetricRss;
        }
        tracing::info!(port = %name, id, driver = %driver_name(&info), mtu = config.mtu, rx_queues = config.rx_queues, tx_queues = config.tx_queues, rss_table, rx_ipv4_checksum, "port started");
        Ok(port)
    }

    /// Makes a just-started port deliver nothing from before it was started, as a NIC does, and
    /// returns how many frames that took. `net_af_packet` (DPDK 22.11) opens each queue's socket
    /// for every interface, sets up and maps its ring, and only then binds it to its own
    /// interface: frames from anywhere in the namespace (loopback traffic included) land in the
    /// ring meanwhile, and from then to the start whatever the interface carried, all of it
    /// stale. Drains every queue (at most what its ring holds, so traffic arriving meanwhile
    /// cannot keep it here), frees the frames and zeroes the counters that saw them.
    fn discard_frames_from_before_start(&self) -> u64 {
        const MOST_PER_QUEUE: u64 = 8192;
        let mut discarded = 0;
        for queue in 0..self.config.rx_queues {
            // The queues are not handed out yet (`take_queues` comes later): nothing else polls them.
            let mut rx = RxQueue { port: self.id, queue, ipv4_checksum: self.rx_ipv4_checksum, _port: PhantomData };
            let mut frames = Burst::new();
            let mut taken = 0;
            while taken < MOST_PER_QUEUE {
                let received = rx.rx(&mut frames);
                frames.clear();
                taken += received as u64;
                if received < sizing::BURST {
                    break;
                }
            }
            discarded += taken;
        }
        if discarded != 0 {
            self.reset_stats();
        }
        discarded
    }

    /// Reads the configuration back from the driver and refuses LRO anywhere on the port.
    pub fn check_lro_disabled(&self) -> Result<()> {
        let mut conf = ffi::rte_eth_conf::default();
        // SAFETY: valid out-parameter, configured port.
        let rc = unsafe { ffi::rte_eth_dev_conf_get(self.id, &mut conf) };
        if rc != 0 {
            return Err(Error::PortSetup {
                port: self.name.clone(),
                step: "rte_eth_dev_conf_get",
                errno: RteErrno(ffi::neg_errno(rc)),
            });
        }
        let queues: Vec<Option<u64>> = (0..self.config.rx_queues)
            .map(|queue| {
                let mut info = ffi::rte_eth_rxq_info::default();
                // SAFETY: valid out-parameter; the queue was set up. Drivers without the query
                // return -ENOTSUP, which leaves the device-level check to decide.
                let rc = unsafe { ffi::rte_eth_rx_queue_info_get(self.id, queue, &mut info) };
                (rc == 0).then_some(info.conf.offloads)
            })
            .collect();
        check_lro_disabled(&self.name, conf.rxmode.offloads, &queues)
    }

    /// DPDK port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Operator's name for the port.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration the port runs with.
    pub fn config(&self) -> &PortConfig {
        &self.config
    }

    /// Whether the device verifies IPv4 header checksums on receive: enabled whenever it can
    /// (`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`; 82599-class NICs can, most virtual devices cannot).
    pub fn verifies_ipv4_checksums(&self) -> bool {
        self.rx_ipv4_checksum
    }

    /// How the port picks the RX queue of a frame.
    pub fn spread(&self) -> Spread {
        self.spread
    }

    /// Fills the RSS redirection table with [`reta_queue`] at every entry, so that which queue a
    /// flow lands on is known from its hash alone, the same way on every port: the pipeline hands
    /// decapsulated traffic to the worker that receives the same connection here. Returns the
    /// table's size, or 0 (logged) if the driver has none or refuses.
    fn program_rss_table(&self, size: u16) -> u16 {
        let entries = usize::from(size);
        if entries == 0 || entries % RSS_SPREAD != 0 {
            tracing::warn!(port = %self.name, size, "no RSS redirection table to program");
            return 0;
        }
        let queues = self.config.rx_queues.max(1);
        let mut table: Vec<ffi::rte_eth_rss_reta_entry64> = (0..entries / 64)
            .map(|group| {
                let mut e = ffi::rte_eth_rss_reta_entry64 { mask: u64::MAX, ..Default::default() };
                for (i, q) in e.reta.iter_mut().enumerate() {
                    *q = reta_queue(group * 64 + i, queues);
                }
                e
            })
            .collect();
        // SAFETY: `table` holds `size / 64` entries of 64, as `size` tells the driver; it is valid
        // for the call, and the port is configured.
        let rc = unsafe { ffi::rte_eth_dev_rss_reta_update(self.id, table.as_mut_ptr(), size) };
        if rc != 0 {
            tracing::warn!(port = %self.name, error = %RteErrno(ffi::neg_errno(rc)), "cannot program the RSS redirection table");
            return 0;
        }
        size
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: valid out-parameter and port.
        unsafe { ffi::rte_eth_macaddr_get(self.id, &mut mac) };
        mac.addr_bytes
    }

    /// Link state without waiting for auto-negotiation.
    pub fn link(&self) -> Link {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: valid out-parameter and port.
        unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut link) };
        Link {
            up: link.link_status() == ffi::RTE_ETH_LINK_UP as u16,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() == ffi::RTE_ETH_LINK_FULL_DUPLEX as u16,
        }
    }

    /// Basic counters.
    pub fn stats(&self) -> PortStats {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid out-parameter and port.
        unsafe { ffi::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            rx_bytes: s.ibytes,
            tx_packets: s.opackets,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Every extended counter the driver offers (per queue counters included), by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a NULL array with size 0 asks for the count.
        let count = unsafe { ffi::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if count <= 0 {
            return Vec::new();
        }
        let mut names = vec![ffi::rte_eth_xstat_name::default(); count as usize];
        let mut values = vec![ffi::rte_eth_xstat::default(); count as usize];
        // SAFETY: both arrays hold `count` entries.
        let got_names = unsafe { ffi::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), count as u32) };
        // SAFETY: as above.
        let got_values = unsafe { ffi::rte_eth_xstats_get(self.id, values.as_mut_ptr(), count as u32) };
        if got_names != count || got_values != count {
            return Vec::new();
        }
        values
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates xstat names inside the 64-byte array.
                let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((name.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }

    /// Zeroes the basic and extended counters.
    pub fn reset_stats(&self) {
        // SAFETY: valid port.
        unsafe {
            ffi::rte_eth_stats_reset(self.id);
            ffi::rte_eth_xstats_reset(self.id);
        }
    }

    /// Hands out the port's queues, once: each worker gets its own RX and TX queues, which is
    /// what makes the fast path lock-free.
    pub fn take_queues(&self) -> Result<(Vec<RxQueue<'_>>, Vec<TxQueue<'_>>)> {
        if self.queues_taken.swap(true, Ordering::AcqRel) {
            return Err(Error::QueuesTaken { port: self.name.clone() });
        }
        let rx = (0..self.config.rx_queues)
            .map(|queue| RxQueue { port: self.id, queue, ipv4_checksum: self.rx_ipv4_checksum, _port: PhantomData })
            .collect();
        let tx = (0..self.config.tx_queues).map(|queue| TxQueue { port: self.id, queue, _port: PhantomData }).collect();
        Ok((rx, tx))
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        // The device outlives its ethdev, which close releases: found first.
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: valid out-parameter and port.
        let device = (self.remove_device && unsafe { ffi::rte_eth_dev_info_get(self.id, &mut info) } == 0)
            .then_some(info.device);
        // SAFETY: queues borrow the port, so no worker polls it any more; stop then close frees
        // the driver's descriptors and the mbufs still in them.
        unsafe {
            let rc = ffi::rte_eth_dev_stop(self.id);
            if rc != 0 {
                tracing::warn!(port = %self.name, errno = %RteErrno(-rc), "rte_eth_dev_stop failed");
            }
            let rc = ffi::rte_eth_dev_close(self.id);
            if rc != 0 {
                tracing::warn!(port = %self.name, errno = %RteErrno(-rc), "rte_eth_dev_close failed");
            }
        }
        if let Some(device) = device {
            // The vdev this process created for the port, whose ethdev is now closed.
            remove(device, &self.name);
        }
        tracing::debug!(port = %self.name, "port closed");
    }
}

/// Removes a virtual device this process created (its driver finds the ethdev released, or
/// never configured, and frees the rest), logging a failure.
fn remove(device: *mut ffi::rte_device, port: &str) {
    if device.is_null() {
        return;
    }
    // SAFETY: `device` is the rte_device of a port's ethdev (rte_eth_dev_info.device), owned by
    // its bus and alive until removed here; the caller no longer uses the port.
    let rc = unsafe { ffi::rte_dev_remove(device) };
    if rc != 0 {
        tracing::warn!(port, errno = %RteErrno(-rc), "cannot remove the port's virtual device");
    }
}

/// One RX queue of a port, owned by one worker.
#[derive(Debug)]
pub struct RxQueue<'p> {
    port: u16,
    queue: u16,
    ipv4_checksum: bool,
    _port: PhantomData<&'p ()>,
}

impl<'p> RxQueue<'p> {
    /// (port id, queue id).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }

    /// Whether the device verifies the IPv4 header checksum of what this queue receives
    /// ([`Burst::ipv4_checksum`](crate::Burst::ipv4_checksum) then says what it found).
    pub fn verifies_ipv4_checksums(&self) -> bool {
        self.ipv4_checksum
    }

    /// Receives into the free part of `burst`; returns how many arrived. The burst cannot outlive
    /// the port (and so the pool its mbufs come from).
    #[inline]
    pub fn rx(&mut self, burst: &mut Burst<'p>) -> usize {
        let (ptr, room) = burst.spare_ptr();
        // SAFETY: `ptr` has room for `room` pointers; the queue is set up and owned by this
        // worker alone (`&mut self`).
        let n = unsafe { ffi::midogw_eth_rx_burst(self.port, self.queue, ptr, room) };
        // SAFETY: the driver filled `n` slots with mbufs it handed over to us.
        unsafe { burst.grew(usize::from(n)) };
        usize::from(n)
    }
}

/// One TX queue of a port, owned by one worker.
#[derive(Debug)]
pub struct TxQueue<'p> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'p ()>,
}

impl<'p> TxQueue<'p> {
    /// (port id, queue id).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }

    /// Sends what the driver takes from the front of `burst`; the rest stays in the burst.
    /// Returns how many were sent.
    #[inline]
    pub fn tx(&mut self, burst: &mut Burst<'p>) -> usize {
        let (ptr, len) = burst.filled_ptr();
        if len == 0 {
            return 0;
        }
        // SAFETY: `ptr` holds `len` valid mbufs owned by the burst; the queue is set up and
        // owned by this worker alone. The driver takes ownership of the first `n`.
        let n = unsafe { ffi::midogw_eth_tx_burst(self.port, self.queue, ptr, len) };
        burst.consumed_front(usize::from(n));
        usize::from(n)
    }
}

fn port_id_by_name(name: &str) -> Option<u16> {
    let c_name = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: valid C string and out-parameter.
    let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

fn driver_name(info: &ffi::rte_eth_dev_info) -> String {
    if info.driver_name.is_null() {
        return "?".into();
    }
    // SAFETY: drivers set driver_name to a static NUL-terminated string.
    unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_key_is_symmetric_pattern() {
        let key = symmetric_rss_key(40);
        assert_eq!(key.len(), 40);
        assert!(key.chunks(2).all(|c| c == [0x6d, 0x5a]));
    }

    /// Microsoft's Toeplitz hash as NICs compute it for RSS.
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let mut hash = 0u32;
        let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        for (i, byte) in input.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    hash ^= window;
                }
                window = (window << 1) | u32::from(key[i + 4] & (0x80 >> bit) != 0);
            }
        }
        hash
    }

    #[test]
    fn symmetric_key_hashes_both_directions_of_a_connection_alike() {
        let key = symmetric_rss_key(40);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..1000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = seed.to_be_bytes();
            let (src, dst, sport, dport) =
                ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]], [b[1], b[6]], [b[3], b[5]]);
            let forward = [src.as_slice(), &dst, &sport, &dport].concat();
            let reverse = [dst.as_slice(), &src, &dport, &sport].concat();
            assert_eq!(toeplitz(&key, &forward), toeplitz(&key, &reverse), "{forward:?}");
        }
        // Microsoft's default key is not symmetric; its published verification vector checks the
        // hash function itself (66.9.149.187:2794 -> 161.142.100.80:1766, TCP/IPv4).
        let msft: Vec<u8> = (0..40)
            .map(|i| {
                let hex = "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()
            })
            .collect();
        let forward = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        let reverse = [161, 142, 100, 80, 66, 9, 149, 187, 0x06, 0xe6, 0x0a, 0xea];
        assert_eq!(toeplitz(&msft, &forward), 0x51cc_c178);
        assert_ne!(toeplitz(&msft, &forward), toeplitz(&msft, &reverse));
    }

    #[test]
    fn lro_on_the_device_or_any_queue_refuses_the_port() {
        let lro = u64::from(ffi::RTE_ETH_RX_OFFLOAD_TCP_LRO);
        assert!(check_lro_disabled("up0", 0, &[Some(0), None]).is_ok());
        let err = check_lro_disabled("up0", lro, &[Some(0)]).unwrap_err();
        assert!(err.to_string().contains("LRO is enabled on the device"), "{err}");
        let err = check_lro_disabled("up0", 0, &[Some(0), Some(lro | 1)]).unwrap_err();
        assert!(err.to_string().contains("RX queue 1"), "{err}");
    }

    #[test]
    fn ethdev_names_follow_dpdk_naming() {
        assert_eq!(Device::Vdev { devargs: "net_af_packet0,iface=veth0".into() }.ethdev_name(), "net_af_packet0");
        assert_eq!(Device::Pci { address: "0000:03:00.0".into() }.ethdev_name(), "0000:03:00.0");
    }
}
