//! Proof that the simulation and `apply` allocate nothing: a counting allocator (the
//! `allocation-counter` crate's, so no `unsafe` here) watches forwarding, ICMP errors, replies,
//! neighbour misses and learning, priority-tagged frames (routed and answered untagged), and the
//! cached path (`apply`, and `apply_into`, which must agree with it: same result, same frame).

use core::net::IpAddr;

use flowtable::sim::{
    apply, apply_into, prepare_outer, simulate, Action, Applied, CoreConfig, CoreState, Outer, Output, PendingOuter,
};
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
    // ARP request for 192.0.2.1 from 192.0.2.7.
    let arp = hex("ffffffffffff0200aa000001080600010800060400010200aa000001c0000207000000000000c0000201");
    vec![
        udp([10, 0, 0, 5], 64),                   // forwarded
        udp([10, 0, 0, 99], 64),                  // neighbour miss: ARP request
        udp([10, 0, 0, 5], 1),                    // time exceeded
        udp([8, 8, 8, 8], 64),                    // net unreachable
        udp([192, 0, 2, 1], 64),                  // to the router: port unreachable
        priority_tagged(&udp([10, 0, 0, 5], 64)), // forwarded without its tag
        priority_tagged(&arp),                    // answered without its tag
        arp,
    ]
}

/// `frame` with an 802.1Q priority tag (PCP 5, VID 0).
fn priority_tagged(frame: &[u8]) -> Vec<u8> {
    [&frame[..12], &[0x81, 0x00, 0xa0, 0x00], &frame[12..]].concat()
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
    let mut after_apply = [0u8; 1514];
    let mut outer = Outer::NONE;
    let mut checked = 0;
    let mut outputs = 0;
    let info = allocation_counter::measure(|| {
        for (f, t) in frames.iter_mut().zip(&templates) {
            let res = simulate(&snap, 0, f, &mut state, 1, &mut out);
            if res.actions.output().is_some() || res.generated.is_some() {
                outputs += 1;
            }
            if res.cacheable {
                f.copy_from_slice(t);
                let applied = apply(&snap, &res.actions, f, &mut state, 1);
                after_apply[..f.len()].copy_from_slice(f);
                f.copy_from_slice(t);
                let into = apply_into(&snap, &res.actions, f, &mut state, 1, &mut outer);
                assert_same(applied, into, &outer);
                assert_eq!(&after_apply[..f.len()], &f[..]);
                checked += 1;
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // Every one, the UDP packet to the router itself too (answered port unreachable).
    assert_eq!(outputs, templates.len());
    assert!(checked > 0);
}

/// `apply_into`'s answer is `apply`'s: the port, and the outer headers for a tunnel.
fn assert_same(
    applied: Result<Output, flowtable::sim::DropReason>,
    into: Result<Applied, flowtable::sim::DropReason>,
    outer: &Outer,
) {
    match (applied, into) {
        (Ok(o), Ok(Applied::Local(port) | Applied::LocalUntagged(port))) => assert_eq!(o, Output::local(port)),
        (Ok(o), Ok(Applied::Encap(port) | Applied::EncapUntagged(port))) => {
            assert_eq!(o, Output { dpdk_port: port, outer: *outer })
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("apply {a:?}, apply_into {b:?}"),
    }
}

/// A router (uplink DPDK 0, 192.0.2.1/24) linked to a bridge with ports on DPDK 1 and 2: floods,
/// learning, known unicast, ARP through the bridge, routing into the bridge and the cached path
/// with its learning refresh.
#[test]
fn bridged_paths_do_not_allocate() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), EthernetAddress([2, 0, 0, 0, 0, 1]), &["192.0.2.1/24".parse().unwrap()]);
    let rb = b.add_router_port(r, Uuid(3), EthernetAddress([2, 0, 0, 0, 0, 5]), &["10.0.0.1/24".parse().unwrap()]);
    let br = b.add_bridge(Uuid(10));
    let b_r = b.add_bridge_port(br, Uuid(11));
    let b1 = b.add_bridge_port(br, Uuid(12));
    let b2 = b.add_bridge_port(br, Uuid(13));
    b.link(rb, b_r);
    b.bind_local(up, 0);
    b.bind_local(b1, 1);
    b.bind_local(b2, 2);
    let snap = b.build().unwrap();
    let mut state = CoreState::new(&CoreConfig::default());
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    // UDP 10.0.0.5 -> 10.0.0.6 between 02:cc:..:0a and 02:cc:..:0b, and to the router MAC.
    let l2 = |dst: &str, src: &str, ip_dst: [u8; 4]| {
        let mut f =
            hex(&format!("{dst}{src}08004500001c0007400040110000 0a0000050a000006 03e8003500080000").replace(' ', ""));
        f[30..34].copy_from_slice(&ip_dst);
        flowtable::wire::Ipv4Packet::new_checked(&mut f[14..]).unwrap().fill_checksum();
        f
    };
    let mut frames: Vec<(u16, Vec<u8>)> = vec![
        (1, l2("02cc0000000b", "02cc0000000a", [10, 0, 0, 6])), // flood, learns A
        (2, l2("02cc0000000a", "02cc0000000b", [10, 0, 0, 5])), // unicast to A, learns B
        (1, l2("020000000005", "02cc0000000a", [8, 8, 8, 8])),  // to the router: neighbour miss upstream
        // ARP request for 10.0.0.1 from 10.0.0.5 (02:cc:..:0a), broadcast on the bridge.
        (
            1,
            hex("ffffffffffff02cc0000000a080600010800060400010 2cc0000000a0a000005 0000000000000a000001"
                .replace(' ', "")
                .as_str()),
        ),
        // From the uplink to 10.0.0.5: routed into the bridge.
        (0, l2("020000000001", "02aa00000001", [10, 0, 0, 5])),
    ];
    frames[4].1[26..30].copy_from_slice(&[192, 0, 2, 7]);
    flowtable::wire::Ipv4Packet::new_checked(&mut frames[4].1[14..]).unwrap().fill_checksum();
    let templates = frames.clone();
    let mut out = [0u8; 1514];
    let mut after_apply = [0u8; 1514];
    let mut outer = Outer::NONE;
    let mut checked = 0;
    let mut outputs = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..2 {
            for ((port, f), (_, t)) in frames.iter_mut().zip(&templates) {
                f.copy_from_slice(t);
                let res = simulate(&snap, *port, f, &mut state, 1, &mut out);
                if res.actions.output().is_some() || !res.flood.is_empty() || res.generated.is_some() {
                    outputs += 1;
                }
                if res.cacheable {
                    f.copy_from_slice(t);
                    let applied = apply(&snap, &res.actions, f, &mut state, 2);
                    after_apply[..f.len()].copy_from_slice(f);
                    f.copy_from_slice(t);
                    let into = apply_into(&snap, &res.actions, f, &mut state, 2, &mut outer);
                    assert_same(applied, into, &outer);
                    assert_eq!(&after_apply[..f.len()], &f[..]);
                    checked += 1;
                }
                let _ = state.macs.take_moved();
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert_eq!(state.macs.len(2), 2);
    assert_eq!(outputs, 10, "every frame goes somewhere, both rounds");
    assert!(checked > 0);
}

/// Tunnels: decapsulation on the underlay port, encapsulation toward a remote port, underlay ARP,
/// and the cached encapsulating path.
#[test]
fn tunnel_paths_do_not_allocate() {
    use flowtable::sim::{decap, UNDERLAY_PORT};
    use flowtable::topology::{Encap, Underlay};
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), EthernetAddress([2, 0, 0, 0, 0, 1]), &["192.0.2.1/24".parse().unwrap()]);
    let rb = b.add_router_port(r, Uuid(3), EthernetAddress([2, 0, 0, 0, 0, 5]), &["10.0.0.1/24".parse().unwrap()]);
    let br = b.add_bridge(Uuid(10));
    let b_r = b.add_bridge_port(br, Uuid(11));
    let vm = b.add_bridge_port(br, Uuid(12));
    let host = b.add_host(Uuid(20), "192.168.7.11".parse().unwrap(), Encap::Vxlan);
    b.link(rb, b_r);
    b.bind_local(up, 0);
    b.bind_remote(vm, host, 0x101);
    b.set_underlay(Underlay::new(5, "192.168.7.1".parse().unwrap(), 24));
    let snap = b.build().unwrap();
    let mut state = CoreState::new(&CoreConfig::default());
    state.set_port_mac(5, EthernetAddress([2, 0x55, 0, 0, 0, 1]));
    let hex = |s: &str| -> Vec<u8> {
        let s = s.replace(' ', "");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    // Inner: 02:cc..0a -> router port MAC, UDP 10.0.0.5 -> 192.0.2.7.
    let mut inner = hex("020000000005 02cc0000000a 0800 4500001c00074000401100000a000005c0000207 03e8003500080000");
    flowtable::wire::Ipv4Packet::new_checked(&mut inner[14..]).unwrap().fill_checksum();
    // Outer: host 1 -> underlay, VXLAN VNI 0x101.
    let mut tunnelled = hex(concat!(
        "025500000001 027700000011 0800 4500004e000040004011 0000 c0a8070b c0a80701",
        "c350 12b5 003a 0000 08000000 00010100"
    ));
    tunnelled.extend_from_slice(&inner);
    flowtable::wire::Ipv4Packet::new_checked(&mut tunnelled[14..]).unwrap().fill_checksum();
    assert!(decap(&snap, &tunnelled).unwrap().is_some());
    // ARP request from host 1 for the underlay address.
    let arp = hex("ffffffffffff 027700000011 0806 0001080006040001 027700000011 c0a8070b 000000000000 c0a80701");
    // From the uplink to the VM at 10.0.0.5 (neighbour learned below).
    let mut down = hex("020000000001 02aa00000001 0800 4500001c000740004011 0000 c0000207 0a000005 03e8003500080000");
    flowtable::wire::Ipv4Packet::new_checked(&mut down[14..]).unwrap().fill_checksum();
    state.neighbours.learn(
        PortId(0),
        "192.0.2.7".parse::<IpAddr>().unwrap(),
        EthernetAddress([2, 0xaa, 0, 0, 0, 1]),
        0,
    );
    state.neighbours.learn(rb, "10.0.0.5".parse::<IpAddr>().unwrap(), EthernetAddress([2, 0xcc, 0, 0, 0, 0xa]), 0);
    let tagged = [&down[..12], &[0x81, 0x00, 0xa0, 0x00], &down[12..]].concat();
    let frames: Vec<(u16, Vec<u8>)> = vec![(5, tunnelled), (0, down.clone()), (5, arp), (0, down), (0, tagged)];
    let mut work = frames.clone();
    let mut out = [0u8; 1514];
    let mut after_apply = [0u8; 1514];
    let mut outer = Outer::NONE;
    let mut encapsulated = 0;
    let mut outcomes = Vec::with_capacity(8);
    let info = allocation_counter::measure(|| {
        for ((port, f), (_, t)) in work.iter_mut().zip(&frames) {
            let res = simulate(&snap, *port, f, &mut state, 1, &mut out);
            outcomes.push((res.actions.drop_reason(), res.actions.encap().is_some(), res.generated.is_some()));
            if res.cacheable {
                f.copy_from_slice(t);
                let start = res.decap_len;
                let applied = apply(&snap, &res.actions, &mut f[start..], &mut state, 2);
                after_apply[..f.len()].copy_from_slice(f);
                f.copy_from_slice(t);
                let into = apply_into(&snap, &res.actions, &mut f[start..], &mut state, 2, &mut outer);
                assert_same(applied, into, &outer);
                assert_eq!(&after_apply[..f.len()], &f[..]);
                encapsulated += usize::from(matches!(into, Ok(a) if a.is_encap()));
                // The compiled hop's way: the same headers written straight into a buffer.
                if let (Ok(applied), Some(Action::Encap { port: remote, sport })) =
                    (into, res.actions.as_slice().last().copied())
                {
                    let port = applied.dpdk_port();
                    let inner_len = f.len() - start - applied.frame_start();
                    let mut pending = PendingOuter::NONE;
                    let prepared = prepare_outer(&snap, &mut state, remote, sport, inner_len, 2, &mut pending);
                    assert_eq!(prepared, Ok(port));
                    let mut room = [0u8; flowtable::sim::MAX_OUTER_LEN];
                    pending.write(&state, &mut room);
                    assert_eq!(&room[..pending.len()], outer.as_bytes());
                }
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert!(encapsulated > 0, "a cached flow into a tunnel was applied");
    use flowtable::sim::DropReason;
    assert_eq!(
        outcomes,
        vec![
            (None, false, false),                                 // decapsulated, learned, routed to the uplink
            (Some(DropReason::NeighbourUnresolved), false, true), // to the VM: ARP on the underlay first
            (None, false, false),                                 // ARP reply in place
            (None, true, false),                                  // now encapsulated
            (None, true, false),                                  // and so without its priority tag
        ]
    );
    assert!(state.neighbours.lookup(UNDERLAY_PORT, "192.168.7.11".parse::<IpAddr>().unwrap(), 1).is_some());
}

/// A router with a stateful infilter (accept return-flow; accept from the downlink; drop): a new
/// connection committed, an unsolicited packet dropped, a reply matched, and the cached
/// `Action::Track` refresh, all without allocating.
#[test]
fn conntrack_paths_do_not_allocate() {
    use flowtable::chain::{Condition, Field, FlowDirection, RuleKind};
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), EthernetAddress([2, 0, 0, 0, 0, 1]), &["192.0.2.1/24".parse().unwrap()]);
    let down = b.add_router_port(r, Uuid(3), EthernetAddress([2, 0, 0, 0, 0, 3]), &["10.0.0.1/24".parse().unwrap()]);
    b.bind_local(up, 0);
    b.bind_local(down, 1);
    let c = b.add_chain(Uuid(10), "stateful");
    let ret = Condition { flow: Some(FlowDirection::Return), ..Condition::default() };
    b.add_new_rule(c, Uuid(11), ret, RuleKind::Accept).unwrap();
    let inside = Condition { in_ports: Some(Field::is(vec![down].into_boxed_slice())), ..Condition::default() };
    b.add_new_rule(c, Uuid(12), inside, RuleKind::Accept).unwrap();
    b.add_new_rule(c, Uuid(13), Condition::default(), RuleKind::Drop).unwrap();
    b.set_router_filters(r, Some(c), None);
    let snap = b.build().unwrap();
    let mut state = CoreState::new(&CoreConfig::default());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    state.neighbours.learn(PortId(down.0), ip("10.0.0.5"), EthernetAddress([2, 9, 9, 9, 9, 9]), 0);
    state.neighbours.learn(PortId(up.0), ip("192.0.2.7"), EthernetAddress([2, 0xaa, 0, 0, 0, 1]), 0);

    let hex = |s: &str| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    // IPv4 UDP, no payload: `dst_mac src_mac`, then src -> dst, sport -> dport.
    let udp = |macs: &str, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
        let mut f: Vec<u8> = hex(&format!("{macs}08004500001c000740004011000000000000000000000000000000080000"));
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        flowtable::wire::Ipv4Packet::new_checked(&mut f[14..]).unwrap().fill_checksum();
        f
    };
    let to_up = "0200000000010200aa000001";
    let to_down = "020000000003020909090909";
    // (DPDK port, frame, forwarded?)
    let mut frames = [
        (0u16, udp(to_up, [192, 0, 2, 7], [10, 0, 0, 5], 53, 5000), false), // unsolicited
        (1, udp(to_down, [10, 0, 0, 5], [192, 0, 2, 7], 5000, 53), true),   // new connection
        (0, udp(to_up, [192, 0, 2, 7], [10, 0, 0, 5], 53, 5000), true),     // its reply
    ];
    let templates = frames.clone();
    let mut out = [0u8; 1514];
    let mut forwarded = [false; 3];
    let info = allocation_counter::measure(|| {
        for (i, ((port, f, _), (_, t, _))) in frames.iter_mut().zip(&templates).enumerate() {
            let res = simulate(&snap, *port, f, &mut state, 1, &mut out);
            forwarded[i] = res.actions.output().is_some();
            if res.cacheable && forwarded[i] {
                f.copy_from_slice(t);
                forwarded[i] &= apply(&snap, &res.actions, f, &mut state, 2).is_ok();
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert_eq!(forwarded, templates.map(|(_, _, expected)| expected));
    assert_eq!(state.conntrack.len(2), 1);
}
