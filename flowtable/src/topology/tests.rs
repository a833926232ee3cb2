//! Snapshot building, validation and route lookup.

use core::net::IpAddr;

use ipnet::IpNet;

use super::snapshot::route_index;
use super::*;
use crate::wire::{EthernetAddress, Icmpv4DstUnreachable, Icmpv6DstUnreachable};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

/// Routes `src` -> `dst` on router 0 of `snap` with `hash`.
fn route(snap: &Snapshot, src: &str, dst: &str, hash: u32) -> RouteDecision {
    snap.routers()[0].route(ip(src), ip(dst), hash, &mut DeviceSet::new())
}

/// An edge router with an uplink (169.254.255.3/30 on DPDK port 0), a second uplink
/// (169.254.254.3/30 on DPDK port 1), and a tenant-side port (10.0.0.1/24, 2001:db8::1/64).
struct Edge {
    b: SnapshotBuilder,
    r: RouterId,
    up0: PortId,
    up1: PortId,
    down: PortId,
}

fn edge() -> Edge {
    let mut b = SnapshotBuilder::new(7);
    let r = b.add_router(Uuid(1));
    let up0 = b.add_router_port(r, Uuid(2), mac(2), &[net("169.254.255.3/30")]);
    let up1 = b.add_router_port(r, Uuid(3), mac(3), &[net("169.254.254.3/30")]);
    let down = b.add_router_port(r, Uuid(4), mac(4), &[net("10.0.0.1/24"), net("2001:db8::1/64")]);
    b.bind_local(up0, 0);
    b.bind_local(up1, 1);
    Edge { b, r, up0, up1, down }
}

#[test]
fn port_routes_are_created() {
    let Edge { b, r, up0, down, .. } = edge();
    let snap = b.build().unwrap();
    assert_eq!(snap.generation(), 7);
    let router = snap.router(r);
    let auto: Vec<(IpNet, RouteType, Option<PortId>)> = router
        .routes
        .iter()
        .filter(|x| matches!(x.origin, RouteOrigin::PortAddress(_)))
        .map(|x| (x.dst, x.kind, x.port))
        .collect();
    // Seeds A6: the /32 port address and the /30 subnet, for every address of every port.
    assert!(auto.contains(&(net("169.254.255.3/32"), RouteType::Local, Some(up0))));
    assert!(auto.contains(&(net("169.254.255.0/30"), RouteType::Normal, Some(up0))));
    assert!(auto.contains(&(net("10.0.0.1/32"), RouteType::Local, Some(down))));
    assert!(auto.contains(&(net("10.0.0.0/24"), RouteType::Normal, Some(down))));
    assert!(auto.contains(&(net("2001:db8::1/128"), RouteType::Local, Some(down))));
    assert!(auto.contains(&(net("2001:db8::/64"), RouteType::Normal, Some(down))));
    // RFC 4291 2.6.1: the IPv6 subnet's Subnet-Router anycast address is the router's too.
    assert!(auto.contains(&(net("2001:db8::/128"), RouteType::Local, Some(down))));
    assert_eq!(auto.len(), 9, "{auto:?}");
    // Their UUIDs are stable and distinct.
    let mut uuids: Vec<Uuid> = router.routes.iter().map(|x| x.uuid).collect();
    uuids.sort_unstable();
    uuids.dedup();
    assert_eq!(uuids.len(), router.routes.len());

    assert!(matches!(route(&snap, "8.8.8.8", "169.254.255.3", 0), RouteDecision::Local { port, .. } if port == up0));
    assert!(matches!(
        route(&snap, "8.8.8.8", "169.254.255.1", 0),
        RouteDecision::Forward { port, next_hop, .. } if port == up0 && next_hop == ip("169.254.255.1")
    ));
    assert!(
        matches!(route(&snap, "2001:db8::99", "2001:db8::1", 0), RouteDecision::Local { port, .. } if port == down)
    );
    assert!(matches!(
        route(&snap, "2001:db8:1::1", "2001:db8::42", 0),
        RouteDecision::Forward { port, next_hop, .. } if port == down && next_hop == ip("2001:db8::42")
    ));
    assert_eq!(route(&snap, "8.8.8.8", "192.0.2.1", 0), RouteDecision::NoRoute);

    // A /32 address has no subnet route.
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    b.add_router_port(r, Uuid(2), mac(2), &[net("192.0.2.1/32")]);
    let snap = b.build().unwrap();
    assert_eq!(snap.router(r).routes.len(), 1);
}

#[test]
fn longest_prefix_source_match_and_weights() {
    let Edge { mut b, r, up0, up1, down } = edge();
    let any4 = net("0.0.0.0/0");
    let gw0 = Some(ip("169.254.255.1"));
    let gw1 = Some(ip("169.254.254.1"));
    b.add_route(r, Route::normal(Uuid(10), any4, any4, up0, gw0, 100));
    b.add_route(r, Route::normal(Uuid(11), any4, net("203.0.113.0/24"), up1, gw1, 10));
    b.add_route(r, Route::normal(Uuid(12), any4, net("203.0.113.128/25"), up0, gw0, 50));
    // A cheaper route of the same prefix wins over a dearer one.
    b.add_route(r, Route::normal(Uuid(13), any4, net("198.51.100.0/24"), up0, gw0, 5));
    b.add_route(r, Route::normal(Uuid(14), any4, net("198.51.100.0/24"), up1, gw1, 1));
    // Source routing: tenant 10.0.0.128/25 leaves through up1 by default.
    b.add_route(r, Route::normal(Uuid(15), net("10.0.0.128/25"), any4, up1, gw1, 100));
    // A more specific route only for one source falls back for the others.
    b.add_route(r, Route::normal(Uuid(16), net("10.0.0.7/32"), net("192.0.2.0/24"), down, Some(ip("10.0.0.254")), 0));
    let snap = b.build().unwrap();
    let router = snap.router(r);
    let id = |u| route_index(router, Uuid(u));
    let chosen = |s, d| route(&snap, s, d, 0).route();

    assert_eq!(chosen("10.0.0.5", "8.8.8.8"), Some(id(10)), "default route");
    assert_eq!(chosen("10.0.0.5", "203.0.113.5"), Some(id(11)), "/24 beats /0 whatever the weights");
    assert_eq!(chosen("10.0.0.5", "203.0.113.200"), Some(id(12)), "/25 beats /24 with a higher weight");
    assert_eq!(chosen("10.0.0.5", "198.51.100.1"), Some(id(14)), "lowest weight of the prefix");
    // Both default routes (id 10 and 15) have dst /0 and weight 100: ECMP among them for sources
    // that match both, only 10 for the others.
    let d = |h| route(&snap, "10.0.0.200", "8.8.8.8", h).route();
    assert_eq!([d(0), d(1)], [Some(id(10)), Some(id(15))]);
    assert_eq!(chosen("10.0.0.7", "192.0.2.1"), Some(id(16)));
    assert_eq!(chosen("10.0.0.8", "192.0.2.1"), Some(id(10)), "source mismatch falls back to /0");
    assert_eq!(
        route(&snap, "10.0.0.7", "192.0.2.1", 0),
        RouteDecision::Forward { port: down, next_hop: ip("10.0.0.254"), route: id(16) }
    );
    // A source of the other family matches nothing.
    assert_eq!(
        snap.router(r).route(ip("2001:db8::5"), ip("8.8.8.8"), 0, &mut DeviceSet::new()),
        RouteDecision::NoRoute
    );
}

#[test]
fn blackhole_reject_and_no_route() {
    let Edge { mut b, r, .. } = edge();
    b.add_route(r, Route::without_port(Uuid(20), net("192.0.2.0/24"), RouteType::Blackhole, 0));
    b.add_route(r, Route::without_port(Uuid(21), net("198.51.100.0/24"), RouteType::Reject, 0));
    b.add_route(r, Route::without_port(Uuid(22), net("2001:db8:dead::/48"), RouteType::Reject, 0));
    let snap = b.build().unwrap();
    let router = snap.router(r);
    let bh = route(&snap, "10.0.0.5", "192.0.2.9", 0);
    assert_eq!(bh, RouteDecision::Blackhole { route: route_index(router, Uuid(20)) });
    assert_eq!((bh.icmpv4_unreachable(), bh.icmpv6_unreachable()), (None, None));
    let rj = route(&snap, "10.0.0.5", "198.51.100.9", 0);
    assert_eq!(rj, RouteDecision::Reject { route: route_index(router, Uuid(21)) });
    assert_eq!(rj.icmpv4_unreachable(), Some(Icmpv4DstUnreachable::CommProhibited));
    let rj6 = route(&snap, "2001:db8::5", "2001:db8:dead::1", 0);
    assert_eq!(rj6.icmpv6_unreachable(), Some(Icmpv6DstUnreachable::RejectRoute));
    let none = route(&snap, "10.0.0.5", "8.8.8.8", 0);
    assert_eq!(none, RouteDecision::NoRoute);
    assert_eq!(none.icmpv4_unreachable(), Some(Icmpv4DstUnreachable::NetUnreachable));
    assert_eq!(none.icmpv6_unreachable(), Some(Icmpv6DstUnreachable::NoRoute));
}

#[test]
fn ecmp_is_deterministic_and_spreads_by_hash() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let any = net("0.0.0.0/0");
    let mut ports = Vec::new();
    for i in 0..4u8 {
        let p = b.add_router_port(r, Uuid(10 + u128::from(i)), mac(i), &[format!("169.254.{i}.2/30").parse().unwrap()]);
        b.bind_local(p, u16::from(i));
        b.add_route(r, Route::normal(Uuid(20 + u128::from(i)), any, any, p, Some(ip(&format!("169.254.{i}.1"))), 0));
        ports.push(p);
    }
    // A dearer default route never takes part.
    b.add_route(r, Route::normal(Uuid(30), any, any, ports[0], Some(ip("169.254.0.1")), 1));
    let snap = b.build().unwrap();
    let egress = |h: u32| match route(&snap, "10.0.0.5", "8.8.8.8", h) {
        RouteDecision::Forward { port, .. } => port,
        d => panic!("{d:?}"),
    };
    // "flow-hash mod N", over the routes in the order they were added.
    for h in 0..16u32 {
        assert_eq!(egress(h), ports[(h % 4) as usize]);
    }
    // Spread over well-mixed hashes, and deterministic across rebuilds of the same topology.
    let mut counts = [0u32; 4];
    let mut x = 0x9e37_79b9u32;
    for _ in 0..4000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let p = egress(x);
        counts[ports.iter().position(|q| *q == p).unwrap()] += 1;
        assert_eq!(egress(x), p);
    }
    assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    let again = snap.clone();
    for h in [0u32, 7, 0xdead_beef] {
        assert_eq!(route(&again, "10.0.0.5", "8.8.8.8", h), route(&snap, "10.0.0.5", "8.8.8.8", h));
    }
}

#[test]
fn route_decisions_record_their_dependencies() {
    let Edge { mut b, r, up0, .. } = edge();
    let any = net("0.0.0.0/0");
    b.add_route(r, Route::normal(Uuid(10), any, any, up0, Some(ip("169.254.255.1")), 0));
    b.add_route(r, Route::without_port(Uuid(11), net("192.0.2.0/24"), RouteType::Blackhole, 0));
    let snap = b.build().unwrap();
    let mut deps = DeviceSet::new();
    snap.router(r).route(ip("10.0.0.5"), ip("8.8.8.8"), 0, &mut deps);
    assert_eq!(deps.as_slice(), &[DeviceId::Router(r), DeviceId::Port(up0)]);
    let mut deps = DeviceSet::new();
    snap.router(r).route(ip("10.0.0.5"), ip("192.0.2.1"), 0, &mut deps);
    assert_eq!(deps.as_slice(), &[DeviceId::Router(r)]);
}

#[test]
fn lookups_by_binding_uuid_and_mac() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), mac(2), &[net("192.0.2.2/24")]);
    let rb = b.add_router_port(r, Uuid(3), mac(3), &[net("10.0.0.1/24")]);
    let br = b.add_bridge(Uuid(4));
    let to_router = b.add_bridge_port(br, Uuid(5));
    let vm1 = b.add_bridge_port(br, Uuid(6));
    let vm2 = b.add_bridge_port(br, Uuid(7));
    let host1 = b.add_host(Uuid(8), ip("192.168.7.11"), Encap::Vxlan);
    let host2 = b.add_host(Uuid(9), ip("192.168.7.12"), Encap::Vxlan);
    b.bind_local(up, 3);
    b.link(rb, to_router);
    b.bind_remote(vm1, host1, 8072578);
    b.bind_remote(vm2, host2, 17);
    b.add_static_mac(br, mac(0x51), vm1);
    b.add_static_mac(br, mac(0x11), vm2);
    let g = b.add_port_group(Uuid(10), true);
    b.add_port_group_member(g, up);
    b.add_port_group_member(g, up);
    let snap = b.build().unwrap();

    assert_eq!(snap.port_by_tunnel_key(8072578), Some(vm1));
    assert_eq!(snap.port_by_tunnel_key(17), Some(vm2));
    assert_eq!(snap.port_by_tunnel_key(18), None);
    assert_eq!(snap.port_by_dpdk_port(3), Some(up));
    assert_eq!(snap.port_by_dpdk_port(0), None);
    assert_eq!(snap.port(vm1).link, PortLink::Exterior(Binding::Remote { host: host1, tunnel_key: 8072578 }));
    assert_eq!(snap.host(host1).tunnel_addr, ip("192.168.7.11"));
    assert_eq!(snap.port(rb).link, PortLink::Peer(to_router));
    assert_eq!(snap.port(to_router).link, PortLink::Peer(rb));
    assert_eq!(snap.port(vm1).device(), DeviceId::Bridge(br));
    assert_eq!(&*snap.bridge(br).ports, &[to_router, vm1, vm2]);
    assert_eq!(&*snap.router(r).ports, &[up, rb]);
    assert_eq!(snap.bridge(br).static_mac(mac(0x51)), Some(vm1));
    assert_eq!(snap.bridge(br).static_mac(mac(0x11)), Some(vm2));
    assert_eq!(snap.bridge(br).static_mac(mac(0x12)), None);
    assert_eq!(&*snap.port_group(g).members, &[up]);
    assert!(snap.port(up).in_group(g));
    assert!(!snap.port(rb).in_group(g));
    assert_eq!(snap.find(Uuid(6)), Some(DeviceId::Port(vm1)));
    assert_eq!(snap.find(Uuid(4)), Some(DeviceId::Bridge(br)));
    assert_eq!(snap.find(Uuid(10)), Some(DeviceId::PortGroup(g)));
    assert_eq!(snap.find(Uuid(99)), None);
    // Tags come from UUIDs: the same in every generation and distinct here.
    let tags: Vec<u32> =
        [DeviceId::Router(r), DeviceId::Bridge(br), DeviceId::Port(up), DeviceId::Port(vm2), DeviceId::PortGroup(g)]
            .iter()
            .map(|&d| snap.device_tag(d))
            .collect();
    assert_eq!(tags, [Uuid(1).tag(), Uuid(4).tag(), Uuid(2).tag(), Uuid(7).tag(), Uuid(10).tag()]);
    let mut distinct = tags.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), tags.len());
    assert!(snap.port(rb).as_router_port().unwrap().owns(ip("10.0.0.1")));
    assert_eq!(snap.get_port(PortId(99)), None);
    // The generated MAC is locally administered unicast, from the UUID.
    let m = RouterPort::generated_mac(Uuid(0x0091_8248_5b8f_8646_2da8_bec2_0fb0_f268));
    assert_eq!(m.to_string(), "02:c2:0f:b0:f2:68");
    assert!(m.is_local() && m.is_unicast());
}

fn err(b: SnapshotBuilder) -> TopologyError {
    b.build().expect_err("should not build")
}

#[test]
fn builder_refusals() {
    // Unknown ids.
    let mut b = SnapshotBuilder::new(1);
    b.set_router_filters(RouterId(0), None, None);
    assert_eq!(err(b), TopologyError::UnknownRouter(RouterId(0)));
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    b.set_router_filters(r, Some(ChainId(3)), None);
    assert_eq!(err(b), TopologyError::UnknownChain(ChainId(3)));
    let mut b = SnapshotBuilder::new(1);
    b.add_bridge_port(BridgeId(2), Uuid(1));
    assert_eq!(err(b), TopologyError::UnknownBridge(BridgeId(2)));
    let mut b = SnapshotBuilder::new(1);
    b.bind_local(PortId(5), 0);
    assert_eq!(err(b), TopologyError::UnknownPort(PortId(5)));
    let mut b = SnapshotBuilder::new(1);
    let br = b.add_bridge(Uuid(1));
    let p = b.add_bridge_port(br, Uuid(2));
    b.bind_remote(p, HostId(0), 1);
    assert_eq!(err(b), TopologyError::UnknownHost(HostId(0)));
    let mut b = SnapshotBuilder::new(1);
    b.add_port_group_member(PortGroupId(0), PortId(0));
    assert_eq!(err(b), TopologyError::UnknownPort(PortId(0)));
    let mut b = SnapshotBuilder::new(1);
    let br = b.add_bridge(Uuid(1));
    b.add_static_mac(br, mac(1), PortId(3));
    assert_eq!(err(b), TopologyError::UnknownPort(PortId(3)));
    let mut b = SnapshotBuilder::new(1);
    b.add_ip_addr_group_address(IpAddrGroupId(1), ip("10.0.0.1"));
    assert_eq!(err(b), TopologyError::UnknownIpAddrGroup(IpAddrGroupId(1)));

    // Duplicate UUIDs.
    let mut b = SnapshotBuilder::new(1);
    b.add_router(Uuid(1));
    b.add_bridge(Uuid(1));
    assert_eq!(err(b), TopologyError::DuplicateUuid(Uuid(1)));
    // A route's id counts too, against devices and against another router's route.
    let mut b = SnapshotBuilder::new(1);
    let r1 = b.add_router(Uuid(1));
    let r2 = b.add_router(Uuid(2));
    b.add_route(r1, Route::without_port(Uuid(7), "10.0.0.0/8".parse().unwrap(), RouteType::Blackhole, 1));
    b.add_route(r2, Route::without_port(Uuid(7), "10.0.0.0/8".parse().unwrap(), RouteType::Blackhole, 1));
    assert_eq!(err(b), TopologyError::DuplicateUuid(Uuid(7)));
    let mut b = SnapshotBuilder::new(1);
    let r1 = b.add_router(Uuid(1));
    b.add_route(r1, Route::without_port(Uuid(1), "10.0.0.0/8".parse().unwrap(), RouteType::Blackhole, 1));
    assert_eq!(err(b), TopologyError::DuplicateUuid(Uuid(1)));

    // Links and bindings.
    let mut b = SnapshotBuilder::new(1);
    let br = b.add_bridge(Uuid(1));
    let br2 = b.add_bridge(Uuid(2));
    let (p, q) = (b.add_bridge_port(br, Uuid(3)), b.add_bridge_port(br2, Uuid(4)));
    let mut b1 = b.clone();
    b1.link(p, q);
    assert_eq!(err(b1), TopologyError::BridgeToBridgeLink(p, q));
    let mut b1 = b.clone();
    b1.link(p, p);
    assert_eq!(err(b1), TopologyError::PortLinkedToItself(p));
    let mut b1 = b.clone();
    b1.bind_local(p, 0);
    b1.bind_local(p, 1);
    assert_eq!(err(b1), TopologyError::PortAlreadyPlugged(p));
    let mut b1 = b.clone();
    b1.bind_local(p, 0);
    b1.bind_local(q, 0);
    assert_eq!(err(b1), TopologyError::DuplicateDpdkPort(0));
    let mut b1 = b.clone();
    let h = b1.add_host(Uuid(9), ip("192.168.7.2"), Encap::Vxlan);
    b1.bind_remote(p, h, 5);
    b1.bind_remote(q, h, 5);
    assert_eq!(err(b1), TopologyError::DuplicateTunnelKey(5));
    let mut b1 = b.clone();
    let h = b1.add_host(Uuid(9), ip("192.168.7.2"), Encap::Vxlan);
    b1.bind_remote(p, h, MAX_TUNNEL_KEY + 1);
    assert_eq!(err(b1), TopologyError::TunnelKeyTooLarge { port: p, key: MAX_TUNNEL_KEY + 1 });

    // Static MAC entries.
    let mut b1 = b.clone();
    b1.add_static_mac(br, EthernetAddress([1, 0, 0, 0, 0, 1]), p);
    assert_eq!(err(b1), TopologyError::StaticMacNotUnicast(EthernetAddress([1, 0, 0, 0, 0, 1])));
    let mut b1 = b.clone();
    b1.add_static_mac(br, mac(1), q);
    assert_eq!(err(b1), TopologyError::StaticMacPortNotOnBridge { bridge: br, port: q });
    let mut b1 = b.clone();
    b1.add_static_mac(br, mac(1), p);
    b1.add_static_mac(br, mac(1), p);
    assert_eq!(err(b1), TopologyError::DuplicateStaticMac { bridge: br, mac: mac(1) });
    b.build().unwrap();
}

#[test]
fn route_and_router_port_refusals() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let r2 = b.add_router(Uuid(2));
    let p = b.add_router_port(r, Uuid(3), mac(3), &[net("10.0.0.1/24")]);
    let other = b.add_router_port(r2, Uuid(4), mac(4), &[]);
    let any4 = net("0.0.0.0/0");
    let cases = [
        (Route::normal(Uuid(10), any4, net("::/0"), p, None, 0), TopologyError::RouteFamilyMismatch(Uuid(10))),
        (
            Route::normal(Uuid(11), any4, any4, p, Some(ip("fe80::1")), 0),
            TopologyError::RouteGatewayFamilyMismatch(Uuid(11)),
        ),
        (
            Route { port: None, ..Route::normal(Uuid(12), any4, any4, p, None, 0) },
            TopologyError::RouteNeedsPort(Uuid(12)),
        ),
        (
            Route { kind: RouteType::Local, port: None, ..Route::normal(Uuid(13), any4, any4, p, None, 0) },
            TopologyError::RouteNeedsPort(Uuid(13)),
        ),
        (
            Route::normal(Uuid(14), any4, any4, other, None, 0),
            TopologyError::RoutePortNotOnRouter { route: Uuid(14), port: other },
        ),
        (Route::normal(Uuid(15), any4, any4, PortId(77), None, 0), TopologyError::UnknownPort(PortId(77))),
    ];
    for (route, e) in cases {
        let mut b1 = b.clone();
        b1.add_route(r, route);
        assert_eq!(err(b1), e);
    }
    let mut b1 = b.clone();
    b1.add_router_port(r, Uuid(5), EthernetAddress([0x03, 0, 0, 0, 0, 1]), &[]);
    assert!(matches!(err(b1), TopologyError::RouterPortMacNotUnicast { .. }));
    let mut b1 = b.clone();
    b1.add_router_port(r, Uuid(5), EthernetAddress([0; 6]), &[]);
    assert!(matches!(err(b1), TopologyError::RouterPortMacNotUnicast { .. }));
    // Host bits of configured routes are cleared.
    let mut b1 = b.clone();
    b1.add_route(r, Route::normal(Uuid(16), net("10.9.9.9/8"), net("192.0.2.77/24"), p, None, 0));
    let snap = b1.build().unwrap();
    let rt = snap.router(r).route_by_id(route_index(snap.router(r), Uuid(16)));
    assert_eq!((rt.src, rt.dst), (net("10.0.0.0/8"), net("192.0.2.0/24")));
    // Errors print.
    assert_eq!(
        TopologyError::JumpTooDeep { chain: ChainId(2), depth: 17 }.to_string(),
        "chain chain2 nests 17 chains, more than the 16 evaluation supports"
    );
}

/// A small topology for the diff tests: a router with an uplink and a port towards a bridge with a
/// VM port on a remote host, a chain on the uplink, and one route; `tweak` changes one thing.
fn diff_topology(tweak: &str) -> Snapshot {
    let mut b = SnapshotBuilder::new(1);
    if tweak == "router-first" {
        // A new router whose UUID sorts first shifts every other router's index.
        b.add_router(Uuid(0));
    }
    let r = b.add_router(Uuid(1));
    let up = b.add_router_port(r, Uuid(2), mac(2), &[net("192.0.2.2/24")]);
    let rb = b.add_router_port(r, Uuid(3), mac(3), &[net("10.0.0.1/24")]);
    let br = b.add_bridge(Uuid(4));
    let to_router = b.add_bridge_port(br, Uuid(5));
    let vm = b.add_bridge_port(br, Uuid(6));
    let host_addr = if tweak == "host" { "192.168.7.99" } else { "192.168.7.11" };
    let host = b.add_host(Uuid(8), ip(host_addr), Encap::Vxlan);
    b.bind_local(up, 0);
    b.link(rb, to_router);
    b.bind_remote(vm, host, 100);
    let chain = b.add_chain(Uuid(20), "in");
    b.set_port_chains(up, Some(chain), None);
    let other = b.add_chain(Uuid(21), "other");
    if tweak == "other-chain-rule" {
        b.add_new_rule(other, Uuid(31), crate::chain::Condition::default(), crate::chain::RuleKind::Accept).unwrap();
    }
    b.add_new_rule(chain, Uuid(30), crate::chain::Condition::default(), crate::chain::RuleKind::Accept).unwrap();
    if tweak == "rule" {
        b.add_new_rule(chain, Uuid(32), crate::chain::Condition::default(), crate::chain::RuleKind::Drop).unwrap();
    }
    let any = net("0.0.0.0/0");
    b.add_route(r, Route::normal(Uuid(10), any, any, up, Some(ip("192.0.2.1")), 0));
    if tweak == "route" {
        b.add_route(r, Route::without_port(Uuid(11), net("198.51.100.0/24"), RouteType::Blackhole, 0));
    }
    if tweak == "static-mac" {
        b.add_static_mac(br, mac(0x51), vm);
    }
    b.build().unwrap()
}

#[test]
fn snapshot_diff_names_exactly_the_changed_devices() {
    let base = diff_topology("");
    let same = diff_topology("");
    assert!(same.changed_tags(&base).is_empty(), "an identical rebuild changes nothing");
    let tags = |uuids: &[u128]| {
        let mut t: Vec<u32> = uuids.iter().map(|&u| Uuid(u).tag()).collect();
        t.sort_unstable();
        t
    };
    // A route changes its router only.
    assert_eq!(diff_topology("route").changed_tags(&base).tags, tags(&[1]));
    // A rule changes its chain only, not the chain stored after it whose rule offset moved.
    assert_eq!(diff_topology("rule").changed_tags(&base).tags, tags(&[20]));
    // A rule in a chain stored before it moves the offset of chain 20's rules: still only chain 21.
    assert_eq!(diff_topology("other-chain-rule").changed_tags(&base).tags, tags(&[21]));
    // A static MAC changes the bridge.
    assert_eq!(diff_topology("static-mac").changed_tags(&base).tags, tags(&[4]));
    // A host's tunnel address changes the ports bound on it.
    assert_eq!(diff_topology("host").changed_tags(&base).tags, tags(&[6]));
    // Removed and added devices are named both ways.
    assert_eq!(base.changed_tags(&diff_topology("route")).tags, tags(&[1]));
    // A new router that shifts indices changes it, the shifted router and everything referring to
    // the shifted router by index (its ports), but not the bridge, chains or the remote port.
    let shifted = diff_topology("router-first").changed_tags(&base);
    assert!(!shifted.everything);
    assert_eq!(shifted.tags, tags(&[0, 1, 2, 3]));
    // The underlay is in every tunnelled flow: changing it flushes everything.
    let mut with_underlay = SnapshotBuilder::new(1);
    with_underlay.set_underlay(Underlay::new(9, "192.168.7.1".parse().unwrap(), 24));
    let with_underlay = with_underlay.build().unwrap();
    assert!(with_underlay.changed_tags(&SnapshotBuilder::new(1).build().unwrap()).everything);
}

#[test]
fn snapshot_diff_says_whether_a_port_or_bridge_changed() {
    let base = diff_topology("");
    let ports_or_bridges = |tweak: &str| diff_topology(tweak).changed_tags(&base).ports_or_bridges;
    // Routes and rules leave every port and bridge as it was: the cores keep what they learned
    // without looking at their tables.
    for tweak in ["", "route", "rule", "other-chain-rule"] {
        assert!(!ports_or_bridges(tweak), "{tweak}");
    }
    // A bridge's static MAC, a remote port's host, ports whose router's index moved: they did not.
    for tweak in ["static-mac", "host", "router-first"] {
        assert!(ports_or_bridges(tweak), "{tweak}");
    }
    // A port or bridge gone counts too (the diff from the bigger snapshot to the smaller).
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    b.add_router_port(r, Uuid(2), mac(2), &[net("192.0.2.2/24")]);
    let router_only = b.build().unwrap();
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    b.add_router_port(r, Uuid(2), mac(2), &[net("192.0.2.2/24")]);
    b.add_bridge(Uuid(9));
    let with_bridge = b.build().unwrap();
    assert!(router_only.changed_tags(&with_bridge).ports_or_bridges, "a bridge removed");
    assert!(with_bridge.changed_tags(&router_only).ports_or_bridges, "a bridge added");
}

#[test]
fn underlay_is_checked_and_kept() {
    let mut b = SnapshotBuilder::new(1);
    let br = b.add_bridge(Uuid(1));
    let p = b.add_bridge_port(br, Uuid(2));
    b.bind_local(p, 3);
    b.set_underlay(Underlay::new(3, "192.168.7.1".parse().unwrap(), 24));
    assert_eq!(b.build(), Err(TopologyError::UnderlayPortBound(3)));

    let mut b = SnapshotBuilder::new(1);
    b.set_underlay(Underlay::new(3, "192.168.7.1".parse().unwrap(), 33));
    assert_eq!(b.build(), Err(TopologyError::UnderlayPrefixTooLong(33)));

    let mut b = SnapshotBuilder::new(1);
    let br = b.add_bridge(Uuid(1));
    let p = b.add_bridge_port(br, Uuid(2));
    let h = b.add_host(Uuid(3), ip("2001:db8::1"), Encap::Gre);
    b.bind_remote(p, h, 7);
    assert_eq!(b.build(), Err(TopologyError::TunnelAddrNotIpv4(h)));

    let mut b = SnapshotBuilder::new(1);
    let u = Underlay {
        gateway: Some("192.168.7.254".parse().unwrap()),
        ..Underlay::new(3, "192.168.7.1".parse().unwrap(), 24)
    };
    b.set_underlay(u);
    let snap = b.build().unwrap();
    let u = snap.underlay().unwrap();
    assert_eq!(u.vxlan_port, 4789);
    assert!(u.on_subnet("192.168.7.200".parse().unwrap()));
    assert!(!u.on_subnet("192.168.8.1".parse().unwrap()));
    assert_eq!(u.next_hop("192.168.7.9".parse().unwrap()), "192.168.7.9".parse::<core::net::Ipv4Addr>().unwrap());
    assert_eq!(u.next_hop("10.9.9.9".parse().unwrap()), "192.168.7.254".parse::<core::net::Ipv4Addr>().unwrap());
    assert_eq!((Encap::Vxlan.mtu_overhead(), Encap::Gre.mtu_overhead()), (50, 46), "the seeds' MTU rules");
}

/// RFC 4291 2.6.1: a `Local` route to the Subnet-Router anycast address of each IPv6 subnet of a
/// router port shorter than /127 (RFC 6164: a /127 has none), once, not for IPv4.
#[test]
fn subnet_router_anycast_routes() {
    let mut b = SnapshotBuilder::new(1);
    let r = b.add_router(Uuid(1));
    let nets = [net("2001:db8:5::1/64"), net("fd00::1/127"), net("2001:db8:6::/64"), net("10.0.0.1/24")];
    let p = b.add_router_port(r, Uuid(2), mac(2), &nets);
    let snap = b.build().unwrap();
    let local: Vec<IpNet> = snap
        .router(r)
        .routes
        .iter()
        .filter(|x| x.kind == RouteType::Local && x.port == Some(p))
        .map(|x| x.dst)
        .collect();
    assert!(local.contains(&net("2001:db8:5::/128")), "{local:?}");
    assert!(!local.contains(&net("fd00::/128")), "a /127 has no anycast address: {local:?}");
    let own: Vec<&IpNet> = local.iter().filter(|n| **n == net("2001:db8:6::/128")).collect();
    assert_eq!(own.len(), 1, "an address that is the anycast address is routed once: {local:?}");
    assert_eq!(local.len(), 5, "{local:?}");
    let rp = snap.port(p).as_router_port().unwrap();
    assert!(rp.subnet_router_anycast(ip("2001:db8:5::")));
    assert!(!rp.subnet_router_anycast(ip("2001:db8:5::1")));
    assert!(!rp.subnet_router_anycast(ip("fd00::")));
    assert!(!rp.subnet_router_anycast(ip("10.0.0.0")));
    assert!(matches!(route(&snap, "2001:db8:9::1", "2001:db8:5::", 0), RouteDecision::Local { port, .. } if port == p));
}
