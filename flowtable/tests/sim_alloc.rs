//! Proof that the simulation and `apply` allocate nothing: a counting allocator (the
//! `allocation-counter` crate's, so no `unsafe` here) watches forwarding, ICMP errors, replies,
//! neighbour misses and learning, and the cached path.

use core::net::IpAddr;

use flowtable::sim::{apply, simulate, CoreConfig, CoreState};
use flowtable::topology::{PortId, Route, RouterPort, SnapshotBuilder, Uuid};
use flowtable::wire::EthernetAddress;

/// An uplink on DPDK 0 (192.0.2.1/24) and a downlink on DPDK 1 (10.0.0.1/24), one router.
fn frames() -> Vec<Vec<u8>> {
    let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    let udp = |dst: [u8; 4], ttl: u8| {
        // 02:00:00:00:00:01 <- 02:aa:00:00:00:01, IPv4 192.0.2.7 -> dst, UDP 1000 -> 53, no payload.
        let mut f: Vec<u8> = hex(concat!(
            "0200000000010200aa0000010800",
            "4500001c0007400040110000c000020700000000",
            "03e8003500080000"
        ));
        f[22] = ttl;
        f[30..34].copy_from_slice(&dst);
        let mut ip = flowtable::wire::Ipv4Packet::new_checked(&mut f[14..]).unwrap();
        ip.fill_checksum();
        f
    };
    vec![
        udp([10, 0, 0, 5], 64),  // forwarded
        udp([10, 0, 0, 99], 64), // neighbour miss: ARP request
        udp([10, 0, 0, 5], 1),   // time exceeded
        udp([8, 8, 8, 8], 64),   // net unreachable
        udp([192, 0, 2, 1], 64), // to the router
        // ARP request for 192.0.2.1 from 192.0.2.7.
        hex("ffffffffffff0200aa000001080600010800060400010200aa000001c0000207000000000000c0000201"),
    ]
}

#[test]
fn simulate_and_apply_do_not_allocate() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), EthernetAddress([2, 0, 0, 0, 0, 1]), &["192.0.2.1/24".parse().unwrap()]);
    let down = b.add_router_port(r, Uuid(3), RouterPort::generated_mac(Uuid(3)), &["10.0.0.1/24".parse().unwrap()]);
    b.bind_local(up, 0);
    b.bind_local(down, 1);
    b.add_route(r, Route::normal(Uuid(4), "0.0.0.0/0".parse().unwrap(), "172.16.0.0/12".parse().unwrap(), up, None, 1));
    let snap = b.build().unwrap();
    let mut state = CoreState::new(&CoreConfig::default());
    state.neighbours.learn(
        PortId(down.0),
        "10.0.0.5".parse::<IpAddr>().unwrap(),
        EthernetAddress([2, 9, 9, 9, 9, 9]),
        0,
    );
    let mut frames = frames();
    let templates = frames.clone();
    let mut out = [0u8; 1514];
    let mut outputs = 0;
    let info = allocation_counter::measure(|| {
        for (f, t) in frames.iter_mut().zip(&templates) {
            let res = simulate(&snap, 0, f, &mut state, 1, &mut out);
            if res.actions.output().is_some() || res.generated.is_some() {
                outputs += 1;
            }
            if res.cacheable {
                f.copy_from_slice(t);
                let _ = apply(&snap, &res.actions, f, &mut state, 1);
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // All but the UDP packet to the router itself (dropped: the exception path comes later).
    assert_eq!(outputs, templates.len() - 1);
}
