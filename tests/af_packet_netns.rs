//! Real traffic through real DPDK ports: two Linux hosts in network namespaces, each behind a
//! veth pair whose root-namespace end is a `net_af_packet` port. The cross-connect worker moves
//! UDP datagrams between them both ways; the receiving sockets check every payload, and the port
//! and link counters must account for exactly what was sent.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{NetNs, TwoHosts};
use midogw::{
    cross_connect, local_ports_spread_by_driver, run_worker, Burst, Device, Eal, Mempool, Port, PortConfig, Spread,
};

const DATAGRAMS: usize = 200;

/// Sends `count` numbered datagrams from `from_ns` to `to` and returns what the receiver in
/// `to_ns` got (bounded by a receive timeout).
fn exchange(from_ns: &NetNs, to_ns: &NetNs, from: &str, to: &str, count: usize, tag: &str) -> Vec<Vec<u8>> {
    let to_addr = to.to_string();
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let receiver = to_ns.spawn(move || {
        let socket = UdpSocket::bind((to_addr.as_str(), 7000)).expect("bind receiver");
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        room_for_every_datagram(&socket);
        bound_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < count {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        got
    });
    // The receiver is bound before the first datagram (a thread may start late on a loaded machine).
    bound.recv_timeout(Duration::from_secs(30)).expect("the receiver binds its socket");
    let (from_addr, to_addr, tag) = (from.to_string(), to.to_string(), tag.to_string());
    from_ns
        .spawn(move || {
            let socket = UdpSocket::bind((from_addr.as_str(), 0)).expect("bind sender");
            for i in 0..count {
                socket.send_to(&payload(&tag, i), (to_addr.as_str(), 7000)).expect("send");
                // Pace the sender: the veth and af_packet rings are small.
                if i % 16 == 15 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
        .join()
        .unwrap();
    receiver.join().unwrap()
}

/// Gives `socket` a receive buffer that holds every datagram of a run. The sender is paced, but a
/// worker that was not scheduled for a while (a loaded machine) finds the datagrams queued in its
/// port's ring and forwards them in one burst, faster than the receiving thread reads: the
/// default buffer (about 200 KiB, some ninety of these datagrams) would drop the rest.
/// SO_RCVBUFFORCE, as root, goes beyond `net.core.rmem_max`.
fn room_for_every_datagram(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let bytes: libc::c_int = 8 << 20;
    // SAFETY: a plain setsockopt on an open socket, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
}

fn payload(tag: &str, i: usize) -> Vec<u8> {
    let mut p = format!("midogw {tag} datagram {i:05} ").into_bytes();
    p.extend((0..(i % 900)).map(|b| (b * 7 + i) as u8));
    p
}

#[test]
fn af_packet_ports_carry_udp_both_ways_between_namespaces() {
    let hosts = TwoHosts::new(&format!("mgt{}", std::process::id()), "10.200.0");
    let (ns_a, ns_b, veth_a, veth_b) = (&hosts.ns_a, &hosts.ns_b, &hosts.veth_a, &hosts.veth_b);

    // What each host's kernel sends from here on bounds what its port can receive.
    let sent_before = hosts.sent();
    let eal = Eal::init(&common::test_eal_config("afp", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "afptest", 4095).expect("pool");
    let config = |name: &str| PortConfig { name: name.into(), mtu: 1500, rx_queues: 1, tx_queues: 1 };
    let ports = [
        Port::open(
            &eal,
            &pool,
            &Device::Vdev { devargs: format!("net_af_packet0,iface={}", veth_a.outer) },
            &config("up0"),
        )
        .expect("port up0"),
        Port::open(
            &eal,
            &pool,
            &Device::Vdev { devargs: format!("net_af_packet1,iface={}", veth_b.outer) },
            &config("up1"),
        )
        .expect("port up1"),
    ];
    for port in &ports {
        port.check_lro_disabled().expect("LRO is off");
        assert!(port.link().up, "{} link up", port.name());
    }

    let (plans, links) = cross_connect(&ports, 1).unwrap();
    let stop = AtomicBool::new(false);
    let (a_to_b, b_to_a) = eal
        .scope(|s| {
            for plan in plans {
                s.launch(1, || run_worker(plan, &stop)).unwrap();
            }
            let there = exchange(ns_a, ns_b, "10.200.0.1", "10.200.0.2", DATAGRAMS, "a->b");
            let back = exchange(ns_b, ns_a, "10.200.0.2", "10.200.0.1", DATAGRAMS, "b->a");
            std::thread::sleep(Duration::from_millis(100)); // let the worker publish its last burst
            stop.store(true, Ordering::Relaxed);
            (there, back)
        })
        .expect("worker exits cleanly");

    let expected = |tag: &str| (0..DATAGRAMS).map(|i| payload(tag, i)).collect::<Vec<_>>();
    common::assert_same_packets(&a_to_b, &expected("a->b"), "datagrams A->B, intact and in order");
    common::assert_same_packets(&b_to_a, &expected("b->a"), "datagrams B->A, intact and in order");

    // Each datagram is one frame: 14 Ethernet + 20 IPv4 + 8 UDP + payload. The hosts' kernels are
    // kept quiet (no IPv6, static neighbours), but the datagrams are only a floor: the ceiling is
    // what each host's kernel counted out of its interface. Every frame a port received must have
    // left through the other, and no port may receive a frame its host did not send (which is how
    // full CI runs caught af_packet's rings taking frames from other interfaces before the port
    // started: see af_packet_ports_receive_nothing_from_before_they_started).
    let frame_bytes: u64 = (0..DATAGRAMS).map(|i| (14 + 20 + 8 + payload("a->b", i).len()) as u64).sum();
    let (up0, up1) = (ports[0].stats(), ports[1].stats());
    let sent = hosts.sent_since(sent_before);
    assert_eq!((up1.tx_packets, up1.tx_bytes), (up0.rx_packets, up0.rx_bytes), "up1 sent to B what up0 received");
    assert_eq!((up0.tx_packets, up0.tx_bytes), (up1.rx_packets, up1.rx_bytes), "and back");
    assert!(up0.rx_packets >= DATAGRAMS as u64 && up0.rx_bytes >= frame_bytes, "up0 received A's frames: {up0:?}");
    assert!(up1.rx_packets >= DATAGRAMS as u64, "up1 received B's frames: {up1:?}");
    for (host, port) in [(0, &up0), (1, &up1)] {
        let (packets, bytes) = sent[host];
        assert!(
            port.rx_packets <= packets && port.rx_bytes <= bytes,
            "port {host} received more than its host sent ({packets} frames, {bytes} bytes): {port:?}"
        );
    }
    assert_eq!((up0.tx_errors, up1.tx_errors, up0.rx_missed, up1.rx_missed), (0, 0, 0, 0));
    for (id, counters) in &links {
        let (rx, tx) = (counters.rx_packets.load(Ordering::Relaxed), counters.tx_packets.load(Ordering::Relaxed));
        assert_eq!(rx, tx, "{id:?}: every frame received was sent on");
        assert!(rx >= DATAGRAMS as u64, "{id:?}: {rx}");
    }
    let xstats = ports[0].xstats();
    assert!(xstats.iter().any(|(n, v)| n == "rx_q0_packets" && *v == up0.rx_packets), "{xstats:?}");

    drop(ports);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}

/// A NIC hands over nothing from before it was started. `net_af_packet` opens each queue's
/// socket for every interface and binds it to its own only afterwards, so frames from anywhere in
/// the namespace (loopback included) can land in its ring meanwhile: a full CI run once forwarded
/// six such frames out of a quiet host's port. Here a loopback flood runs while the port opens,
/// several times over; the port must receive nothing its quiet host did not send.
#[test]
fn af_packet_ports_receive_nothing_from_before_they_started() {
    let hosts = TwoHosts::new(&format!("mgf{}", std::process::id()), "10.202.0");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
            let source = UdpSocket::bind("127.0.0.1:0").expect("bind source");
            source.connect(sink.local_addr().unwrap()).unwrap();
            sink.set_nonblocking(true).unwrap();
            let mut sent = 0u64;
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                sent += u64::from(source.send(b"midogw loopback flood").is_ok());
                while sink.recv(&mut buf).is_ok() {}
            }
            sent
        })
    };
    let eal = Eal::init(&common::test_eal_config("afpf", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "afpf", 4095).expect("pool");
    let config = PortConfig { name: "up0".into(), mtu: 1500, rx_queues: 1, tx_queues: 1 };
    for round in 0..20 {
        let sent_before = hosts.sent();
        let devargs = format!("net_af_packet{round},iface={}", hosts.veth_a.outer);
        let port = Port::open(&eal, &pool, &Device::Vdev { devargs }, &config).expect("port");
        let (mut rx, _tx) = port.take_queues().unwrap();
        let mut received = 0;
        for _ in 0..20 {
            let mut burst = Burst::new();
            received += rx[0].rx(&mut burst);
            std::thread::sleep(Duration::from_millis(1));
        }
        let (host_frames, _) = hosts.sent_since(sent_before)[0];
        let stats = port.stats();
        assert!(
            received as u64 <= host_frames && stats.rx_packets <= host_frames,
            "round {round}: the port received {received} frames (counted {stats:?}) while its host sent {host_frames}"
        );
        drop(rx);
        drop(port);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flood.join().unwrap() > 0, "the loopback flood ran");
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}

/// `net_af_packet` with several queues spreads frames by the kernel's fanout hash, not by the
/// symmetric RSS the pipeline's owner rule assumes: the port says so, and with several workers
/// it is named for the start-up warning (appliance/run.rs); with one queue, or one worker, not.
#[test]
fn af_packet_ports_with_several_queues_spread_by_their_driver() {
    let hosts = TwoHosts::new(&format!("mgs{}", std::process::id()), "10.201.0");
    let eal = Eal::init(&common::test_eal_config("afpq", 256)).expect("EAL");
    let pool = Mempool::new(&eal, "afpq", 4095).expect("pool");
    let open = |n: u16, iface: &str, queues: u16| {
        let config = PortConfig { name: format!("up{n}"), mtu: 1500, rx_queues: queues, tx_queues: queues };
        let devargs = format!("net_af_packet{n},iface={iface},qpairs={queues}");
        Port::open(&eal, &pool, &Device::Vdev { devargs }, &config).expect("af_packet port")
    };
    let ports = [open(0, &hosts.veth_a.outer, 2), open(1, &hosts.veth_b.outer, 1)];
    assert_eq!((ports[0].spread(), ports[1].spread()), (Spread::Driver, Spread::OneQueue));
    assert_eq!(local_ports_spread_by_driver(&ports, None, 2), ["up0"]);
    assert!(local_ports_spread_by_driver(&ports, None, 1).is_empty(), "one worker owns every connection");
    assert!(local_ports_spread_by_driver(&ports, Some(ports[0].id()), 2).is_empty(), "the underlay is not local");
}
