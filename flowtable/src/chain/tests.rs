//! Chain semantics: every condition and its inversion, the seeds' examples, jump / return /
//! continue, NAT hand-off and resumption, validation, and a property against a naive model.

use core::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::topology::{
    BridgeId, ChainId, DeviceId, DeviceSet, IpAddrGroupId, PortGroupId, PortId, RouterId, RouterPort, Snapshot,
    SnapshotBuilder, TopologyError, Uuid,
};
use crate::wire::{EthernetAddress, Fragment, Headers};

const IPV4: u16 = 0x0800;
const ARP: u16 = 0x0806;
const IPV6: u16 = 0x86dd;
const VM_MAC: EthernetAddress = EthernetAddress([0x02, 0xaa, 0, 0, 0, 5]);
const GW_MAC: EthernetAddress = EthernetAddress([0x02, 0xbb, 0, 0, 0, 1]);

/// The devices every test topology has.
#[derive(Debug, Clone, Copy)]
struct Ids {
    router: RouterId,
    bridge: BridgeId,
    p: [PortId; 4],
    g: [PortGroupId; 2],
    a: [IpAddrGroupId; 2],
}

/// A router with ports p0, p1, a bridge with ports p2, p3; port groups g0 = {p0, p2}, g1 = {p3};
/// IP address groups a0 = {10.0.0.5, 2001:db8::5}, a1 = {}.
fn base() -> (SnapshotBuilder, Ids) {
    let mut b = SnapshotBuilder::new(1);
    let router = b.add_router(Uuid(0x100));
    let p0 = b.add_router_port(router, Uuid(0x101), RouterPort::generated_mac(Uuid(0x101)), &[net("10.0.0.1/24")]);
    let p1 = b.add_router_port(router, Uuid(0x102), RouterPort::generated_mac(Uuid(0x102)), &[net("10.1.0.1/24")]);
    let bridge = b.add_bridge(Uuid(0x200));
    let p2 = b.add_bridge_port(bridge, Uuid(0x201));
    let p3 = b.add_bridge_port(bridge, Uuid(0x202));
    b.link(p1, p2);
    let g0 = b.add_port_group(Uuid(0x300), true);
    let g1 = b.add_port_group(Uuid(0x301), false);
    b.add_port_group_member(g0, p0);
    b.add_port_group_member(g0, p2);
    b.add_port_group_member(g1, p3);
    let a0 = b.add_ip_addr_group(Uuid(0x400));
    let a1 = b.add_ip_addr_group(Uuid(0x401));
    b.add_ip_addr_group_address(a0, ip("10.0.0.5"));
    b.add_ip_addr_group_address(a0, ip("2001:db8::5"));
    (b, Ids { router, bridge, p: [p0, p1, p2, p3], g: [g0, g1], a: [a0, a1] })
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp4(src: &str, dst: &str, sport: u16, dport: u16) -> PacketMatchFields {
    PacketMatchFields {
        src_ip: Some(ip(src)),
        dst_ip: Some(ip(dst)),
        proto: Some(6),
        tos: Some(0),
        src_port: Some(sport),
        dst_port: Some(dport),
        ..PacketMatchFields::ethernet(VM_MAC, GW_MAC, IPV4)
    }
}

fn icmp4(src: &str, dst: &str) -> PacketMatchFields {
    PacketMatchFields { proto: Some(1), src_port: Some(8), dst_port: Some(0), ..tcp4(src, dst, 0, 0) }
}

fn arp(mac: EthernetAddress, spa: &str, tpa: &str) -> PacketMatchFields {
    PacketMatchFields {
        src_ip: Some(ip(spa)),
        dst_ip: Some(ip(tpa)),
        proto: Some(1),
        ..PacketMatchFields::ethernet(mac, EthernetAddress::BROADCAST, ARP)
    }
}

fn frag(mut f: PacketMatchFields, state: Fragment) -> PacketMatchFields {
    f.fragment = state;
    if state == Fragment::Later {
        f.src_port = None;
        f.dst_port = None;
    }
    f
}

fn rule(n: u128, condition: Condition, kind: RuleKind) -> Rule {
    Rule::new(Uuid(0x1000 + n), condition, kind).unwrap()
}

fn eval(snap: &Snapshot, chain: ChainId, f: &PacketMatchFields, ctx: &EvalContext<'_>) -> Verdict {
    evaluate(snap, chain, f, ctx)
}

/// Whether `cond` matches: a one-rule chain that drops on a match.
fn matches(cond: &Condition, f: &PacketMatchFields, ctx: &EvalContext<'_>) -> bool {
    let (mut b, _) = base();
    let c = b.add_chain(Uuid(0x900), "t");
    b.add_rule(c, rule(0, cond.clone(), RuleKind::Drop));
    let snap = b.build().unwrap();
    match eval(&snap, c, f, ctx) {
        Verdict::Drop => true,
        Verdict::Accept => false,
        v => panic!("{v:?}"),
    }
}

/// Checks that `set(value)` matches as `expect` and `set(!value)` the opposite.
fn both<T: Clone>(
    set: impl Fn(&mut Condition, Field<T>),
    value: T,
    f: &PacketMatchFields,
    ctx: &EvalContext<'_>,
    expect: bool,
) {
    let mut c = Condition::default();
    set(&mut c, Field::is(value.clone()));
    assert_eq!(matches(&c, f, ctx), expect, "plain {c:?} on {f:?}");
    let mut c = Condition::default();
    set(&mut c, Field::not(value));
    assert_eq!(matches(&c, f, ctx), !expect, "inverted {c:?} on {f:?}");
}

fn ctx() -> EvalContext<'static> {
    EvalContext { forward_flow: true, ..Default::default() }
}

#[test]
fn empty_condition_matches_everything() {
    let c = Condition::default();
    assert!(matches(&c, &tcp4("1.2.3.4", "5.6.7.8", 1, 2), &ctx()));
    assert!(matches(&c, &PacketMatchFields::ethernet(VM_MAC, GW_MAC, 0x88cc), &ctx()));
}

#[test]
fn hw_src_and_hw_dst_with_masks() {
    let f = tcp4("10.0.0.5", "10.0.0.1", 1000, 22);
    let cx = ctx();
    let hw_src = |c: &mut Condition, v: Field<MacMatch>| c.hw_src = Some(v);
    let hw_dst = |c: &mut Condition, v: Field<MacMatch>| c.hw_dst = Some(v);
    both(hw_src, MacMatch::exact(VM_MAC), &f, &cx, true);
    both(hw_src, MacMatch::exact(GW_MAC), &f, &cx, false);
    both(hw_dst, MacMatch::exact(GW_MAC), &f, &cx, true);
    both(hw_dst, MacMatch::exact(VM_MAC), &f, &cx, false);
    // A11: ffff.0000.0000 compares only the first 16 bits.
    let first16: MacMask = "ffff.0000.0000".parse().unwrap();
    let same_oui = EthernetAddress([0x02, 0xaa, 9, 9, 9, 9]);
    both(hw_src, MacMatch { addr: same_oui, mask: first16 }, &f, &cx, true);
    let other_oui = EthernetAddress([0x02, 0xab, 0, 0, 0, 5]);
    both(hw_src, MacMatch { addr: other_oui, mask: first16 }, &f, &cx, false);
    // 0000.0000.0000: any packet.
    let none: MacMask = "0000.0000.0000".parse().unwrap();
    both(hw_dst, MacMatch { addr: other_oui, mask: none }, &f, &cx, true);
    // The default mask is exact.
    assert_eq!(MacMask::default(), "ffff.ffff.ffff".parse().unwrap());
    assert_eq!(first16.to_string(), "ffff.0000.0000");
    for bad in ["ffff.ffff", "ffff.ffff.ffff.ffff", "fffg.0000.0000", "ffff.0000.000", ""] {
        assert_eq!(bad.parse::<MacMask>(), Err(MacMaskSyntax), "{bad}");
    }
}

#[test]
fn ethertype_tos_proto() {
    let f = tcp4("10.0.0.5", "10.0.0.1", 1000, 22);
    let cx = ctx();
    both(|c, v| c.ethertype = Some(v), IPV4, &f, &cx, true);
    both(|c, v| c.ethertype = Some(v), ARP, &f, &cx, false);
    both(|c, v| c.tos = Some(v), 0, &f, &cx, true);
    both(|c, v| c.tos = Some(v), 0x10, &f, &cx, false);
    both(|c, v| c.proto = Some(v), 6, &f, &cx, true);
    both(|c, v| c.proto = Some(v), 17, &f, &cx, false);
    // A non-IP frame has no ToS and no protocol: the test is false, the inverted test true.
    let l2 = PacketMatchFields::ethernet(VM_MAC, GW_MAC, 0x88cc);
    both(|c, v| c.tos = Some(v), 0, &l2, &cx, false);
    both(|c, v| c.proto = Some(v), 6, &l2, &cx, false);
    // The listing's signed form of IPv6.
    assert_eq!(parse_ethertype("-31011"), Some(IPV6));
    assert_eq!(parse_ethertype("2048"), Some(IPV4));
    assert_eq!(parse_ethertype("0x0806"), Some(ARP));
    assert_eq!(parse_ethertype("ipv4"), None);
}

#[test]
fn src_and_dst_cidrs() {
    let f = tcp4("10.0.0.5", "192.168.1.1", 1000, 22);
    let cx = ctx();
    let src = |c: &mut Condition, v: Field<IpNet>| c.src = Some(v);
    let dst = |c: &mut Condition, v: Field<IpNet>| c.dst = Some(v);
    both(src, net("10.0.0.0/16"), &f, &cx, true);
    both(src, net("10.1.0.0/16"), &f, &cx, false);
    both(src, net("10.0.0.5/32"), &f, &cx, true);
    both(src, net("0.0.0.0/0"), &f, &cx, true);
    both(dst, net("192.168.0.0/16"), &f, &cx, true);
    both(dst, net("192.168.2.0/24"), &f, &cx, false);
    // Host bits in the condition are ignored.
    both(src, net("10.0.9.9/16"), &f, &cx, true);
    // Another family never matches.
    both(src, net("::/0"), &f, &cx, false);
    // No IP at all: `src !10.0.0.0/16` matches a non-IP frame (MidoNet's semantics).
    let l2 = PacketMatchFields::ethernet(VM_MAC, GW_MAC, 0x88cc);
    both(src, net("10.0.0.0/16"), &l2, &cx, false);
    // IPv6.
    let mut f6 = f;
    f6.ethertype = IPV6;
    f6.src_ip = Some(ip("2001:db8::5"));
    both(src, net("2001:db8::/32"), &f6, &cx, true);
    both(src, net("2001:db9::/32"), &f6, &cx, false);
}

#[test]
fn l4_port_ranges_and_icmp_type_code() {
    let f = tcp4("10.0.0.5", "10.0.0.1", 40000, 80);
    let cx = ctx();
    let sp = |c: &mut Condition, v: Field<PortRange>| c.src_port = Some(v);
    let dp = |c: &mut Condition, v: Field<PortRange>| c.dst_port = Some(v);
    both(dp, PortRange::single(80), &f, &cx, true);
    both(dp, PortRange::new(81, 90), &f, &cx, false);
    both(dp, PortRange::new(1, 80), &f, &cx, true);
    both(dp, PortRange::new(80, 65535), &f, &cx, true);
    both(sp, PortRange::new(32768, 60999), &f, &cx, true);
    both(sp, PortRange::new(1, 1023), &f, &cx, false);
    // ICMP: the type is the source "port", the code the destination "port".
    let echo = icmp4("10.0.0.5", "10.0.0.1");
    both(sp, PortRange::single(8), &echo, &cx, true);
    both(dp, PortRange::single(0), &echo, &cx, true);
    both(sp, PortRange::single(0), &echo, &cx, false);
    // No ports (GRE): the test is false (header fragment policy still lets it be evaluated).
    let gre = PacketMatchFields { proto: Some(47), src_port: None, dst_port: None, ..f };
    both(dp, PortRange::single(80), &gre, &cx, false);
}

#[test]
fn in_ports_out_ports_and_port_groups() {
    let (_, ids) = base();
    let [p0, p1, p2, p3] = ids.p;
    let f = tcp4("10.0.0.5", "10.0.0.1", 1000, 22);
    let inp = |c: &mut Condition, v: Field<Box<[PortId]>>| c.in_ports = Some(v);
    let outp = |c: &mut Condition, v: Field<Box<[PortId]>>| c.out_ports = Some(v);
    let at = EvalContext { in_port: Some(p0), out_port: Some(p1), group_port: Some(p0), ..ctx() };
    both(inp, Box::new([p0]), &f, &at, true);
    both(inp, Box::new([p3, p2]), &f, &at, false);
    both(inp, Box::new([p3, p0]), &f, &at, true);
    both(outp, Box::new([p1]), &f, &at, true);
    both(outp, Box::new([p0]), &f, &at, false);
    // Port chains are evaluated without in/out port: the plain test fails.
    let port_chain = EvalContext { group_port: Some(p0), ..ctx() };
    both(inp, Box::new([p0]), &f, &port_chain, false);
    let pg = |c: &mut Condition, v: Field<PortGroupId>| c.port_group = Some(v);
    both(pg, ids.g[0], &f, &at, true);
    both(pg, ids.g[1], &f, &at, false);
    both(pg, ids.g[0], &f, &port_chain, true);
    let from_p3 = EvalContext { group_port: Some(p3), ..ctx() };
    both(pg, ids.g[1], &f, &from_p3, true);
    both(pg, ids.g[0], &f, &ctx(), false);
}

#[test]
fn ip_address_groups() {
    let (_, ids) = base();
    let cx = ctx();
    let src = |c: &mut Condition, v: Field<IpAddrGroupId>| c.ip_addr_group_src = Some(v);
    let dst = |c: &mut Condition, v: Field<IpAddrGroupId>| c.ip_addr_group_dst = Some(v);
    let f = tcp4("10.0.0.5", "10.0.0.6", 1000, 22);
    both(src, ids.a[0], &f, &cx, true);
    both(dst, ids.a[0], &f, &cx, false);
    both(src, ids.a[1], &f, &cx, false);
    let mut f6 = f;
    f6.src_ip = Some(ip("2001:db8::5"));
    both(src, ids.a[0], &f6, &cx, true);
    let l2 = PacketMatchFields::ethernet(VM_MAC, GW_MAC, 0x88cc);
    both(src, ids.a[0], &l2, &cx, false);
}

#[test]
fn flow_direction_and_traversed_device() {
    let (_, ids) = base();
    let f = tcp4("10.0.0.5", "10.0.0.1", 1000, 22);
    let fwd = EvalContext { forward_flow: true, ..Default::default() };
    let ret = EvalContext { forward_flow: false, ..Default::default() };
    let on = |d| Condition { flow: Some(d), ..Default::default() };
    assert!(matches(&on(FlowDirection::Forward), &f, &fwd));
    assert!(!matches(&on(FlowDirection::Forward), &f, &ret));
    assert!(matches(&on(FlowDirection::Return), &f, &ret));
    assert!(!matches(&on(FlowDirection::Return), &f, &fwd));

    let path = [DeviceId::Router(ids.router)];
    let through = EvalContext { traversed: &path, ..ctx() };
    let td = |c: &mut Condition, v: Field<DeviceId>| c.traversed_device = Some(v);
    both(td, DeviceId::Router(ids.router), &f, &through, true);
    both(td, DeviceId::Bridge(ids.bridge), &f, &through, false);
    both(td, DeviceId::Router(ids.router), &f, &ctx(), false);
}

#[test]
fn fragment_policies_match() {
    let f = tcp4("10.0.0.5", "10.0.0.1", 1000, 80);
    let (un, first, later) = (f, frag(f, Fragment::First), frag(f, Fragment::Later));
    let cases = [
        (FragmentPolicy::Any, [true, true, true]),
        (FragmentPolicy::Header, [true, true, false]),
        (FragmentPolicy::NonHeader, [false, false, true]),
        (FragmentPolicy::Unfragmented, [true, false, false]),
    ];
    for (policy, expect) in cases {
        let c = Condition { fragment_policy: Some(policy), ..Default::default() };
        for (pkt, e) in [un, first, later].iter().zip(expect) {
            assert_eq!(matches(&c, pkt, &ctx()), e, "{policy:?} {:?}", pkt.fragment);
        }
    }
}

#[test]
fn default_fragment_policies_and_refusals() {
    let plain = Condition::default();
    let cidr =
        Condition { src: Some(Field::is(net("10.0.0.0/8"))), dst: Some(Field::is(net("0.0.0.0/0"))), ..plain.clone() };
    let ports = Condition { dst_port: Some(Field::is(PortRange::single(80))), ..plain.clone() };
    let fp = |c: &Condition, p| Condition { fragment_policy: Some(p), ..c.clone() };
    let resolved = |c: Condition, k: RuleKind| Rule::new(Uuid(1), c, k).map(|r| r.fragment_policy);

    assert_eq!(resolved(plain.clone(), RuleKind::Accept), Ok(FragmentPolicy::Any));
    // The seeds' "src or dst" read as MidoNet implements it: CIDRs alone keep ANY.
    assert_eq!(resolved(cidr.clone(), RuleKind::Drop), Ok(FragmentPolicy::Any));
    assert_eq!(resolved(ports.clone(), RuleKind::Accept), Ok(FragmentPolicy::Header));
    assert_eq!(resolved(fp(&ports, FragmentPolicy::Unfragmented), RuleKind::Accept), Ok(FragmentPolicy::Unfragmented));
    assert_eq!(resolved(fp(&ports, FragmentPolicy::Header), RuleKind::Accept), Ok(FragmentPolicy::Header));
    for p in [FragmentPolicy::Any, FragmentPolicy::NonHeader] {
        assert_eq!(resolved(fp(&ports, p), RuleKind::Accept), Err(RuleError::FragmentPolicyWithL4Ports(p)));
        let src_port =
            Condition { src_port: Some(Field::not(PortRange::new(1, 2))), fragment_policy: Some(p), ..plain.clone() };
        assert_eq!(resolved(src_port, RuleKind::Drop), Err(RuleError::FragmentPolicyWithL4Ports(p)));
    }
    assert_eq!(resolved(fp(&plain, FragmentPolicy::NonHeader), RuleKind::Drop), Ok(FragmentPolicy::NonHeader));

    let nat = |kind: NatKind| RuleKind::Nat(NatRule { kind, action: NatAction::Accept });
    let floating = || NatKind::Dnat(Box::new([NatTarget::single(ip("10.0.0.9"))]));
    let range = || NatKind::Snat(Box::new(["198.51.100.2:1024-65535".parse().unwrap()]));
    let two_ips = || NatKind::Snat(Box::new(["198.51.100.2-198.51.100.3".parse().unwrap()]));
    let with_port = || NatKind::Dnat(Box::new(["10.0.0.9:8080".parse().unwrap()]));
    // A floating IP keeps the general default and allows any policy.
    assert_eq!(resolved(plain.clone(), nat(floating())), Ok(FragmentPolicy::Any));
    assert_eq!(resolved(fp(&plain, FragmentPolicy::Header), nat(floating())), Ok(FragmentPolicy::Header));
    // Anything else is unfragmented only.
    for kind in [range(), two_ips(), with_port()] {
        assert_eq!(resolved(plain.clone(), nat(kind.clone())), Ok(FragmentPolicy::Unfragmented));
        assert_eq!(
            resolved(fp(&plain, FragmentPolicy::Unfragmented), nat(kind.clone())),
            Ok(FragmentPolicy::Unfragmented)
        );
        for p in [FragmentPolicy::Any, FragmentPolicy::Header, FragmentPolicy::NonHeader] {
            assert_eq!(
                resolved(fp(&plain, p), nat(kind.clone())),
                Err(RuleError::FragmentPolicyNatNeedsUnfragmented(p))
            );
        }
    }
    // A floating IP on a rule with ports too (MidoNet: `!isFloatingIp() || hasL4Fields()`).
    assert_eq!(resolved(ports.clone(), nat(floating())), Ok(FragmentPolicy::Unfragmented));
    // Reverse rules have no target: general defaults.
    assert_eq!(resolved(plain.clone(), nat(NatKind::RevSnat)), Ok(FragmentPolicy::Any));
    assert_eq!(resolved(ports, nat(NatKind::RevDnat)), Ok(FragmentPolicy::Header));
}

#[test]
fn rule_validation_errors() {
    let r = |c: Condition, k: RuleKind| Rule::new(Uuid(1), c, k).map(|_| ());
    let c = Condition { dst_port: Some(Field::is(PortRange::new(90, 80))), ..Default::default() };
    assert_eq!(r(c, RuleKind::Accept), Err(RuleError::EmptyPortRange { start: 90, end: 80 }));
    let c = Condition { in_ports: Some(Field::is(Box::new([]))), ..Default::default() };
    assert_eq!(r(c, RuleKind::Accept), Err(RuleError::EmptyPortList));
    let c = Condition { out_ports: Some(Field::not(Box::new([]))), ..Default::default() };
    assert_eq!(r(c, RuleKind::Accept), Err(RuleError::EmptyPortList));
    let nat = |kind| RuleKind::Nat(NatRule { kind, action: NatAction::Continue });
    assert_eq!(r(Condition::default(), nat(NatKind::Snat(Box::new([])))), Err(RuleError::NatWithoutTarget));
    let bad = NatTarget { addr_start: ip("10.0.0.9"), addr_end: ip("10.0.0.1"), port_start: 0, port_end: 0 };
    assert_eq!(
        r(Condition::default(), nat(NatKind::Dnat(Box::new([bad])))),
        Err(RuleError::NatTargetAddressRangeReversed)
    );
    // A port list is kept sorted and without duplicates.
    let c = Condition { in_ports: Some(Field::is(Box::new([PortId(3), PortId(1), PortId(3)]))), ..Default::default() };
    let rule = Rule::new(Uuid(1), c, RuleKind::Accept).unwrap();
    assert_eq!(&*rule.condition.in_ports.unwrap().value, &[PortId(1), PortId(3)]);
}

#[test]
fn nat_targets_parse_and_validate() {
    let t = |s: &str| s.parse::<NatTarget>();
    let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(t("172.16.3.3"), Ok(NatTarget::single(v4("172.16.3.3"))));
    assert!(t("172.16.3.3").unwrap().is_single_ip_without_ports());
    assert_eq!(
        t("198.51.100.2-198.51.100.9:1024-65535"),
        Ok(NatTarget {
            addr_start: v4("198.51.100.2"),
            addr_end: v4("198.51.100.9"),
            port_start: 1024,
            port_end: 65535
        })
    );
    assert_eq!(
        t("10.0.0.1:80"),
        Ok(NatTarget { addr_start: v4("10.0.0.1"), addr_end: v4("10.0.0.1"), port_start: 80, port_end: 80 })
    );
    assert!(!t("10.0.0.1:80").unwrap().is_single_ip_without_ports());
    assert_eq!(t("2001:db8::1-2001:db8::9").map(|x| x.addr_end), Ok(ip("2001:db8::9")));
    assert_eq!(t("[2001:db8::1]:443").map(|x| (x.addr_start, x.port_start)), Ok((ip("2001:db8::1"), 443)));
    assert_eq!(t("[2001:db8::1]-[2001:db8::2]:1-2").map(|x| x.port_end), Ok(2));
    for s in [
        "10.0.0.1",
        "10.0.0.1-10.0.0.2",
        "10.0.0.1:80",
        "10.0.0.1-10.0.0.9:1024-2048",
        "[2001:db8::1]:443",
        "2001:db8::1-2001:db8::2",
    ] {
        assert_eq!(t(s).unwrap().to_string(), s, "round trip");
    }
    // The seed's listing of the router gateway SNAT (`:1--1`) is not a valid target.
    assert_eq!(t("198.51.100.2:1--1"), Err(RuleError::NatTargetSyntax));
    for s in ["", "10.0.0", "10.0.0.1:", "10.0.0.1:x", "10.0.0.1-", "[2001:db8::1", "[2001:db8::1]x", "10.0.0.1:70000"]
    {
        assert_eq!(t(s), Err(RuleError::NatTargetSyntax), "{s:?}");
    }
    assert_eq!(t("10.0.0.9-10.0.0.1"), Err(RuleError::NatTargetAddressRangeReversed));
    assert_eq!(t("10.0.0.1-2001:db8::1"), Err(RuleError::NatTargetMixedFamilies));
    assert_eq!(t("10.0.0.1:0-10"), Err(RuleError::NatTargetBadPortRange { start: 0, end: 10 }));
    assert_eq!(t("10.0.0.1:20-10"), Err(RuleError::NatTargetBadPortRange { start: 20, end: 10 }));
}

/// Seeds A7 "Example condition 1": only 10.0.0.0/16 may reach 10.0.5.0/24.
/// 1. DROP when ethertype 2048 and src !10.0.0.0/16; 2. ACCEPT when dst 10.0.5.0/24; 3. DROP.
#[test]
fn seed_drop_unless_source_then_accept_dst_then_drop() {
    let (mut b, _) = base();
    let c = b.add_chain(Uuid(0x900), "drop_not_src_mynetwork_INBOUND");
    let without_drop = b.add_chain(Uuid(0x901), "without the final drop");
    let r1 =
        Condition { ethertype: Some(Field::is(IPV4)), src: Some(Field::not(net("10.0.0.0/16"))), ..Default::default() };
    let r2 = Condition { dst: Some(Field::is(net("10.0.5.0/24"))), ..Default::default() };
    b.add_rule(c, rule(1, r1.clone(), RuleKind::Drop));
    b.add_rule(c, rule(2, r2.clone(), RuleKind::Accept));
    b.add_rule(c, rule(3, Condition::default(), RuleKind::Drop));
    b.add_rule(without_drop, rule(4, r1, RuleKind::Drop));
    b.add_rule(without_drop, rule(5, r2, RuleKind::Accept));
    let snap = b.build().unwrap();
    let cx = ctx();
    assert_eq!(eval(&snap, c, &tcp4("10.0.1.1", "10.0.5.5", 1000, 80), &cx), Verdict::Accept);
    assert_eq!(eval(&snap, c, &tcp4("10.0.1.1", "10.0.6.1", 1000, 80), &cx), Verdict::Drop);
    assert_eq!(eval(&snap, c, &tcp4("192.168.1.1", "10.0.5.5", 1000, 80), &cx), Verdict::Drop);
    // "The unconditional drop is needed to make rule 2 meaningful."
    assert_eq!(eval(&snap, without_drop, &tcp4("10.0.1.1", "10.0.6.1", 1000, 80), &cx), Verdict::Accept);
    // ARP is not IPv4, so rule 1 passes it; its target protocol address is the IP destination
    // field (as in MidoNet's and OVS's flow match), so rule 2 accepts ARP for 10.0.5.0/24.
    assert_eq!(eval(&snap, c, &arp(VM_MAC, "192.168.1.1", "10.0.5.1"), &cx), Verdict::Accept);
    assert_eq!(eval(&snap, c, &arp(VM_MAC, "192.168.1.1", "10.0.6.1"), &cx), Verdict::Drop);
}

/// The SG chain of seeds A7: accept TCP 5900, ICMP, TCP 22, TCP 80.
fn sg_rules(b: &mut SnapshotBuilder, sg: ChainId) {
    let tcp = |port| Condition {
        ethertype: Some(Field::is(IPV4)),
        proto: Some(Field::is(6)),
        dst_port: Some(Field::is(PortRange::single(port))),
        ..Default::default()
    };
    let icmp = Condition { ethertype: Some(Field::is(IPV4)), proto: Some(Field::is(1)), ..Default::default() };
    b.add_rule(sg, rule(10, tcp(5900), RuleKind::Accept));
    b.add_rule(sg, rule(11, icmp, RuleKind::Accept));
    b.add_rule(sg, rule(12, tcp(22), RuleKind::Accept));
    b.add_rule(sg, rule(13, tcp(80), RuleKind::Accept));
}

/// An accept list followed by an unconditional drop (seeds A7): only what is listed passes.
#[test]
fn seed_accept_list_then_unconditional_drop() {
    let (mut b, _) = base();
    let c = b.add_chain(Uuid(0x900), "OS_SG_x_INGRESS");
    sg_rules(&mut b, c);
    b.add_rule(c, rule(20, Condition::default(), RuleKind::Drop));
    let snap = b.build().unwrap();
    let cx = ctx();
    for port in [22, 80, 5900] {
        assert_eq!(eval(&snap, c, &tcp4("203.0.113.1", "10.0.0.5", 40000, port), &cx), Verdict::Accept);
    }
    assert_eq!(eval(&snap, c, &icmp4("203.0.113.1", "10.0.0.5"), &cx), Verdict::Accept);
    assert_eq!(eval(&snap, c, &tcp4("203.0.113.1", "10.0.0.5", 40000, 443), &cx), Verdict::Drop);
    let udp = PacketMatchFields { proto: Some(17), ..tcp4("203.0.113.1", "10.0.0.5", 40000, 22) };
    assert_eq!(eval(&snap, c, &udp, &cx), Verdict::Drop);
}

/// The port anti-spoof chain of seeds A7: (1) drop IPv4 whose source is not the VM IP; (2) drop if
/// hw-src is not the VM MAC; (3) accept return-flow; (4) jump to the SG chain; (5) drop non-ARP.
#[test]
fn seed_anti_spoof_chain_with_jump_to_sg() {
    let (mut b, _) = base();
    let port_chain = b.add_chain(Uuid(0x900), "OS_PORT_vm_INBOUND");
    let sg = b.add_chain(Uuid(0x901), "OS_SG_x_INGRESS");
    sg_rules(&mut b, sg);
    let rules = [
        (
            Condition {
                ethertype: Some(Field::is(IPV4)),
                src: Some(Field::not(net("10.0.0.5/32"))),
                ..Default::default()
            },
            RuleKind::Drop,
        ),
        (Condition { hw_src: Some(Field::not(MacMatch::exact(VM_MAC))), ..Default::default() }, RuleKind::Drop),
        (Condition { flow: Some(FlowDirection::Return), ..Default::default() }, RuleKind::Accept),
        (Condition::default(), RuleKind::Jump(sg)),
        (Condition { ethertype: Some(Field::not(ARP)), ..Default::default() }, RuleKind::Drop),
    ];
    for (i, (c, k)) in rules.into_iter().enumerate() {
        b.add_rule(port_chain, rule(30 + i as u128, c, k));
    }
    let snap = b.build().unwrap();
    assert!(snap.chain(port_chain).uses_conntrack());
    assert!(!snap.chain(sg).uses_conntrack());
    assert_eq!(snap.chain(port_chain).jump_depth(), 2);

    let fwd = ctx();
    let ret = EvalContext { forward_flow: false, ..Default::default() };
    let ok = tcp4("10.0.0.5", "203.0.113.1", 40000, 22);
    assert_eq!(eval(&snap, port_chain, &ok, &fwd), Verdict::Accept, "SG accepts ssh");
    let https = tcp4("10.0.0.5", "203.0.113.1", 40000, 443);
    assert_eq!(eval(&snap, port_chain, &https, &fwd), Verdict::Drop, "SG falls through, rule 5 drops");
    assert_eq!(eval(&snap, port_chain, &https, &ret), Verdict::Accept, "return flow accepted by rule 3");
    let spoofed_ip = tcp4("10.0.0.6", "203.0.113.1", 40000, 22);
    assert_eq!(eval(&snap, port_chain, &spoofed_ip, &ret), Verdict::Drop);
    let spoofed_mac = PacketMatchFields { eth_src: EthernetAddress([2, 0, 0, 0, 0, 66]), ..ok };
    assert_eq!(eval(&snap, port_chain, &spoofed_mac, &ret), Verdict::Drop);
    assert_eq!(eval(&snap, port_chain, &arp(VM_MAC, "10.0.0.5", "10.0.0.1"), &fwd), Verdict::Accept);
    assert_eq!(eval(&snap, port_chain, &arp(GW_MAC, "10.0.0.5", "10.0.0.1"), &fwd), Verdict::Drop);

    // The verdict depended on both chains.
    let mut deps = DeviceSet::new();
    evaluate_tracked(&snap, port_chain, &https, &fwd, &mut deps);
    assert_eq!(deps.as_slice(), &[DeviceId::Chain(port_chain), DeviceId::Chain(sg)]);
    let mut deps = DeviceSet::new();
    evaluate_tracked(&snap, port_chain, &spoofed_ip, &fwd, &mut deps);
    assert_eq!(deps.as_slice(), &[DeviceId::Chain(port_chain)]);
}

/// Seeds A12, Example 1: accept TCP 80 (default header policy), then drop all. The header fragment
/// is accepted; the non-header fragment misses rule 1 and is dropped. The fix (Example 2's intent):
/// accept non-header fragments explicitly.
#[test]
fn seed_fragment_examples() {
    let (mut b, ids) = base();
    let router2_port0 = ids.p[0];
    let example1 = b.add_chain(Uuid(0x900), "chain0");
    let fixed = b.add_chain(Uuid(0x901), "chain0 fixed");
    let accept80 = Condition {
        ethertype: Some(Field::is(IPV4)),
        src: Some(Field::is(net("0.0.0.0/0"))),
        proto: Some(Field::is(6)),
        in_ports: Some(Field::is(Box::new([router2_port0]))),
        dst_port: Some(Field::is(PortRange::single(80))),
        ..Default::default()
    };
    let drop_all = Condition {
        ethertype: Some(Field::is(IPV4)),
        src: Some(Field::is(net("0.0.0.0/0"))),
        dst: Some(Field::is(net("0.0.0.0/0"))),
        in_ports: Some(Field::is(Box::new([router2_port0]))),
        ..Default::default()
    };
    let r1 = rule(1, accept80.clone(), RuleKind::Accept);
    assert_eq!(r1.fragment_policy, FragmentPolicy::Header);
    b.add_rule(example1, r1.clone());
    b.add_rule(example1, rule(2, drop_all.clone(), RuleKind::Drop));
    let nonheader = Condition {
        ethertype: Some(Field::is(IPV4)),
        proto: Some(Field::is(6)),
        in_ports: Some(Field::is(Box::new([router2_port0]))),
        fragment_policy: Some(FragmentPolicy::NonHeader),
        ..Default::default()
    };
    b.add_rule(fixed, rule(3, nonheader, RuleKind::Accept));
    b.add_rule(fixed, rule(4, accept80, RuleKind::Accept));
    b.add_rule(fixed, rule(5, drop_all, RuleKind::Drop));
    let snap = b.build().unwrap();

    let at = EvalContext { in_port: Some(router2_port0), ..ctx() };
    let web = tcp4("203.0.113.1", "10.0.0.5", 40000, 80);
    let (head, tail) = (frag(web, Fragment::First), frag(web, Fragment::Later));
    assert_eq!(eval(&snap, example1, &web, &at), Verdict::Accept);
    assert_eq!(eval(&snap, example1, &head, &at), Verdict::Accept, "header fragment accepted");
    assert_eq!(eval(&snap, example1, &tail, &at), Verdict::Drop, "non-header fragment dropped");
    assert_eq!(eval(&snap, fixed, &tail, &at), Verdict::Accept);
    assert_eq!(eval(&snap, fixed, &head, &at), Verdict::Accept);
    let other = frag(tcp4("203.0.113.1", "10.0.0.5", 40000, 72), Fragment::First);
    assert_eq!(eval(&snap, fixed, &other, &at), Verdict::Drop);

    // The printed rule `fragment-policy header ... type drop` drops header fragments and
    // unfragmented packets only.
    let (mut b, _) = base();
    let c = b.add_chain(Uuid(0x900), "chain0");
    let hdr = Condition { fragment_policy: Some(FragmentPolicy::Header), ..Default::default() };
    b.add_rule(c, rule(1, hdr, RuleKind::Drop));
    let snap = b.build().unwrap();
    assert_eq!(eval(&snap, c, &head, &at), Verdict::Drop);
    assert_eq!(eval(&snap, c, &web, &at), Verdict::Drop);
    assert_eq!(eval(&snap, c, &tail, &at), Verdict::Accept);
}

#[test]
fn jump_return_continue() {
    let (mut b, _) = base();
    let top = b.add_chain(Uuid(0x900), "top");
    let mid = b.add_chain(Uuid(0x901), "mid");
    let leaf = b.add_chain(Uuid(0x902), "leaf");
    let tcp = |port| Condition { dst_port: Some(Field::is(PortRange::single(port))), ..Default::default() };
    // top: continue on 1; jump mid; drop 2; return on 3; drop 4; (falls off: accept)
    b.add_rule(top, rule(1, tcp(1), RuleKind::Continue));
    b.add_rule(top, rule(2, Condition::default(), RuleKind::Jump(mid)));
    b.add_rule(top, rule(3, tcp(2), RuleKind::Drop));
    b.add_rule(top, rule(4, tcp(3), RuleKind::Return));
    b.add_rule(top, rule(5, tcp(4), RuleKind::Drop));
    // mid: return on 2 (so top's drop-2 applies); jump leaf; reject 5; accept 6
    b.add_rule(mid, rule(6, tcp(2), RuleKind::Return));
    b.add_rule(mid, rule(7, Condition::default(), RuleKind::Jump(leaf)));
    b.add_rule(mid, rule(8, tcp(5), RuleKind::Reject));
    b.add_rule(mid, rule(9, tcp(6), RuleKind::Accept));
    // leaf: return on 5 (so mid's reject applies); drop 7; falls off otherwise
    b.add_rule(leaf, rule(10, tcp(5), RuleKind::Return));
    b.add_rule(leaf, rule(11, tcp(7), RuleKind::Drop));
    let snap = b.build().unwrap();
    assert_eq!(snap.chain(top).jump_depth(), 3);
    let v = |port| eval(&snap, top, &tcp4("1.1.1.1", "2.2.2.2", 9, port), &ctx());
    assert_eq!(v(1), Verdict::Accept, "continue, nothing else: falls off the top");
    assert_eq!(v(2), Verdict::Drop, "mid returns, top drops");
    assert_eq!(v(3), Verdict::Accept, "return at top level accepts");
    assert_eq!(v(4), Verdict::Drop, "after two fall-offs");
    assert_eq!(v(5), Verdict::Reject, "leaf returns, mid rejects");
    assert_eq!(v(6), Verdict::Accept, "decisive accept in mid");
    assert_eq!(v(7), Verdict::Drop, "decisive drop in leaf");
    assert_eq!(v(8), Verdict::Accept);
    // An empty chain accepts.
    let (mut b, _) = base();
    let empty = b.add_chain(Uuid(0x900), "empty");
    let snap = b.build().unwrap();
    assert_eq!(eval(&snap, empty, &tcp4("1.1.1.1", "2.2.2.2", 9, 9), &ctx()), Verdict::Accept);
}

#[test]
fn loops_are_refused_and_depth_is_bounded() {
    let jump =
        |b: &mut SnapshotBuilder, from, to, n| b.add_rule(from, rule(n, Condition::default(), RuleKind::Jump(to)));
    let (mut b, _) = base();
    let a = b.add_chain(Uuid(0x900), "a");
    jump(&mut b, a, a, 1);
    assert_eq!(b.build(), Err(TopologyError::ChainLoop(a)));

    let (mut b, _) = base();
    let a = b.add_chain(Uuid(0x900), "a");
    let c = b.add_chain(Uuid(0x901), "c");
    let d = b.add_chain(Uuid(0x902), "d");
    jump(&mut b, a, c, 1);
    jump(&mut b, c, d, 2);
    jump(&mut b, d, a, 3);
    assert!(matches!(b.build(), Err(TopologyError::ChainLoop(_))));

    // A diamond is no loop.
    let (mut b, _) = base();
    let a = b.add_chain(Uuid(0x900), "a");
    let c = b.add_chain(Uuid(0x901), "c");
    let d = b.add_chain(Uuid(0x902), "d");
    let e = b.add_chain(Uuid(0x903), "e");
    jump(&mut b, a, c, 1);
    jump(&mut b, a, d, 2);
    jump(&mut b, c, e, 3);
    jump(&mut b, d, e, 4);
    let snap = b.build().unwrap();
    assert_eq!(snap.chain(a).jump_depth(), 3);

    // MAX_JUMP_DEPTH chains in a row build and evaluate; one more is refused.
    for n in [MAX_JUMP_DEPTH, MAX_JUMP_DEPTH + 1] {
        let (mut b, _) = base();
        let chains: Vec<ChainId> = (0..n).map(|i| b.add_chain(Uuid(0x900 + i as u128), "c")).collect();
        for (i, w) in chains.windows(2).enumerate() {
            jump(&mut b, w[0], w[1], i as u128);
        }
        let last = *chains.last().unwrap();
        b.add_rule(last, rule(999, Condition::default(), RuleKind::Drop));
        match b.build() {
            Ok(snap) => {
                assert_eq!(n, MAX_JUMP_DEPTH);
                assert_eq!(snap.chain(chains[0]).jump_depth() as usize, MAX_JUMP_DEPTH);
                assert_eq!(eval(&snap, chains[0], &tcp4("1.1.1.1", "2.2.2.2", 1, 2), &ctx()), Verdict::Drop);
            }
            Err(e) => {
                assert_eq!(n, MAX_JUMP_DEPTH + 1);
                assert!(matches!(e, TopologyError::JumpTooDeep { depth, .. } if depth as usize == n), "{e}");
            }
        }
    }
}

#[test]
fn rules_naming_unknown_devices_are_refused() {
    let cases: Vec<(Condition, RuleKind, TopologyError)> = vec![
        (Condition::default(), RuleKind::Jump(ChainId(99)), TopologyError::UnknownChain(ChainId(99))),
        (
            Condition { in_ports: Some(Field::is(Box::new([PortId(99)]))), ..Default::default() },
            RuleKind::Drop,
            TopologyError::UnknownPort(PortId(99)),
        ),
        (
            Condition { port_group: Some(Field::is(PortGroupId(9))), ..Default::default() },
            RuleKind::Drop,
            TopologyError::UnknownPortGroup(PortGroupId(9)),
        ),
        (
            Condition { ip_addr_group_dst: Some(Field::not(IpAddrGroupId(9))), ..Default::default() },
            RuleKind::Drop,
            TopologyError::UnknownIpAddrGroup(IpAddrGroupId(9)),
        ),
        (
            Condition { traversed_device: Some(Field::is(DeviceId::Bridge(BridgeId(9)))), ..Default::default() },
            RuleKind::Drop,
            TopologyError::UnknownBridge(BridgeId(9)),
        ),
    ];
    for (cond, kind, err) in cases {
        let (mut b, _) = base();
        let c = b.add_chain(Uuid(0x900), "c");
        b.add_rule(c, rule(1, cond, kind));
        assert_eq!(b.build(), Err(err));
    }
    let (mut b, _) = base();
    let c = b.add_chain(Uuid(0x900), "c");
    let bad = Condition { src_port: Some(Field::is(PortRange::new(2, 1))), ..Default::default() };
    assert_eq!(
        b.add_new_rule(c, Uuid(1), bad, RuleKind::Drop),
        Err(TopologyError::Rule(RuleError::EmptyPortRange { start: 2, end: 1 }))
    );
}

#[test]
fn nat_rules_stop_evaluation_and_resume_on_the_translated_packet() {
    let (mut b, _) = base();
    let pre = b.add_chain(Uuid(0x900), "OS_PRE_ROUTING");
    let sub = b.add_chain(Uuid(0x901), "sub");
    let nat = |kind, action| RuleKind::Nat(NatRule { kind, action });
    let dnat = || NatKind::Dnat(Box::new([NatTarget::single(ip("172.16.3.3"))]));
    let to_fip = Condition { dst: Some(Field::is(net("198.51.100.3/32"))), ..Default::default() };
    let to_vm = Condition { dst: Some(Field::is(net("172.16.3.3/32"))), ..Default::default() };
    // pre: jump sub; rev_snat (accept) for 198.51.100.2; drop to the VM; accept
    // sub: dnat 198.51.100.3 -> 172.16.3.3 (continue); drop port 23 to the VM (sees the new dst);
    //      dnat with action return for port 8080; accept port 443 after DNAT; dnat accept for port 1
    b.add_rule(pre, rule(1, Condition::default(), RuleKind::Jump(sub)));
    let to_gw = Condition { dst: Some(Field::is(net("198.51.100.2/32"))), ..Default::default() };
    b.add_rule(pre, rule(2, to_gw, nat(NatKind::RevSnat, NatAction::Accept)));
    b.add_rule(pre, rule(3, to_vm.clone(), RuleKind::Drop));
    b.add_rule(pre, rule(4, Condition::default(), RuleKind::Accept));
    let port = |p| Condition { dst_port: Some(Field::is(PortRange::single(p))), ..to_fip.clone() };
    b.add_rule(sub, rule(5, port(1), nat(dnat(), NatAction::Accept)));
    b.add_rule(sub, rule(6, port(8080), nat(dnat(), NatAction::Return)));
    b.add_rule(sub, rule(7, to_fip.clone(), nat(dnat(), NatAction::Continue)));
    let telnet_to_vm = Condition { dst_port: Some(Field::is(PortRange::single(23))), ..to_vm.clone() };
    b.add_rule(sub, rule(8, telnet_to_vm, RuleKind::Reject));
    let snap = b.build().unwrap();
    let rule_of = |n: u128| snap.rules().iter().position(|r| r.uuid == Uuid(0x1000 + n)).unwrap();
    let cx = ctx();

    // Runs the chain as the NAT stage will: translate the destination on every forward NAT rule.
    let run = |f: PacketMatchFields, outcome: NatOutcome| {
        let mut f = f;
        let mut deps = DeviceSet::new();
        let mut v = evaluate_tracked(&snap, pre, &f, &cx, &mut deps);
        let mut seen = Vec::new();
        while let Verdict::Nat(at) = v {
            seen.push(at.rule().index());
            if let RuleKind::Nat(NatRule { kind: NatKind::Dnat(t), .. }) = &snap.rule(at.rule()).kind {
                if outcome == NatOutcome::Applied {
                    f.dst_ip = Some(t[0].addr_start);
                }
            }
            v = resume(&snap, &at, outcome, &f, &cx, &mut deps);
        }
        (v, seen)
    };
    let to = |p| tcp4("203.0.113.1", "198.51.100.3", 40000, p);
    // Action accept: ends at the NAT rule.
    assert_eq!(run(to(1), NatOutcome::Applied), (Verdict::Accept, vec![rule_of(5)]));
    // Action return: back in pre after the jump, which sees the VM address and drops.
    assert_eq!(run(to(8080), NatOutcome::Applied), (Verdict::Drop, vec![rule_of(6)]));
    // Action continue: rule 8 sees the translated destination and rejects telnet.
    assert_eq!(run(to(23), NatOutcome::Applied), (Verdict::Reject, vec![rule_of(7)]));
    // Continue, then sub runs off, then pre drops traffic to the VM.
    assert_eq!(run(to(443), NatOutcome::Applied), (Verdict::Drop, vec![rule_of(7)]));
    // Not applied: the rules count as not matching; nothing is translated.
    assert_eq!(run(to(1), NatOutcome::NotApplied), (Verdict::Accept, vec![rule_of(5), rule_of(7)]));
    // A reverse rule: accept when the state was found, go on (to the final accept) otherwise.
    let reply = tcp4("203.0.113.1", "198.51.100.2", 80, 40000);
    assert_eq!(run(reply, NatOutcome::Applied), (Verdict::Accept, vec![rule_of(2)]));
    assert_eq!(run(reply, NatOutcome::NotApplied), (Verdict::Accept, vec![rule_of(2)]));
}

#[test]
fn match_fields_from_parsed_frames() {
    // scapy: Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")/IP(src="10.0.0.1", dst="10.0.0.2", tos=0x20)/UDP(sport=5000, dport=53)
    let udp4: [u8; 42] = [
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0x20, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40,
        0x11, 0x66, 0xae, 0x0a, 0, 0, 1, 0x0a, 0, 0, 2, 0x13, 0x88, 0x00, 0x35, 0x00, 0x08, 0xe7, 0x84,
    ];
    let h = Headers::parse(&udp4).unwrap();
    let f = PacketMatchFields::from(&h);
    assert_eq!(f.eth_src, EthernetAddress([2, 0, 0, 0, 0, 2]));
    assert_eq!(f.ethertype, IPV4);
    assert_eq!((f.src_ip, f.dst_ip), (Some(ip("10.0.0.1")), Some(ip("10.0.0.2"))));
    assert_eq!((f.proto, f.tos), (Some(17), Some(0x20)));
    assert_eq!((f.src_port, f.dst_port, f.fragment), (Some(5000), Some(53), Fragment::Unfragmented));

    // The same with MF set and a fragment offset: a later fragment has no ports.
    let mut later = udp4;
    later[20] = 0x20;
    later[21] = 0x03;
    crate::wire::refresh_ipv4_checksum(&mut later, 14);
    let f = PacketMatchFields::from_headers(&Headers::parse(&later).unwrap());
    assert_eq!((f.fragment, f.src_port, f.dst_port, f.proto), (Fragment::Later, None, None, Some(17)));

    // scapy: Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:02")/ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1")
    let arp_req: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00,
        0x01, 0x02, 0, 0, 0, 0, 2, 0x0a, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 1,
    ];
    let f = PacketMatchFields::from_headers(&Headers::parse(&arp_req).unwrap());
    assert_eq!((f.ethertype, f.proto), (ARP, Some(1)));
    assert_eq!((f.src_ip, f.dst_ip), (Some(ip("10.0.0.2")), Some(ip("10.0.0.1"))));
    assert_eq!((f.src_port, f.tos), (None, None));
}

// ---------------------------------------------------------------------------------------------
// Property: evaluation equals a naive recursive model.
// ---------------------------------------------------------------------------------------------

/// A rule of a random chain program, in terms the model reads directly.
#[derive(Debug, Clone)]
struct RuleSpec {
    ethertype: Option<(bool, u16)>,
    src: Option<(bool, &'static str)>,
    proto: Option<(bool, u8)>,
    dst_port: Option<(bool, u16, u16)>,
    in_port: Option<(bool, usize)>,
    port_group: Option<(bool, usize)>,
    ipag_src: Option<(bool, usize)>,
    traversed_router: Option<bool>,
    flow: Option<bool>,
    fragment_policy: Option<FragmentPolicy>,
    /// 0 accept, 1 drop, 2 reject, 3 continue, 4 return, 5 jump (to a later chain), 6 NAT.
    /// Jumps and returns are drawn more often: they are what the stack machine can get wrong.
    action: u8,
    jump: usize,
    nat_action: u8,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let inv = any::<bool>;
    let frag = prop_oneof![
        Just(None),
        Just(Some(FragmentPolicy::Any)),
        Just(Some(FragmentPolicy::Header)),
        Just(Some(FragmentPolicy::NonHeader)),
        Just(Some(FragmentPolicy::Unfragmented)),
    ];
    (
        (
            proptest::option::weighted(0.2, (inv(), prop_oneof![Just(IPV4), Just(ARP), Just(IPV6)])),
            proptest::option::weighted(
                0.2,
                (inv(), prop_oneof![Just("10.0.0.0/8"), Just("10.0.0.0/24"), Just("::/0")]),
            ),
            proptest::option::weighted(0.2, (inv(), prop_oneof![Just(6u8), Just(17u8)])),
            proptest::option::weighted(0.2, (inv(), 20u16..90, 0u16..30)),
            proptest::option::weighted(0.15, (inv(), 0usize..4)),
            proptest::option::weighted(0.2, (inv(), 0usize..2)),
        ),
        (
            proptest::option::weighted(0.2, (inv(), 0usize..2)),
            proptest::option::weighted(0.15, inv()),
            proptest::option::weighted(0.2, inv()),
            frag,
            prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(4), Just(4), Just(5), Just(5), Just(5), Just(6)],
            0usize..8,
            0u8..3,
        ),
    )
        .prop_map(|((ethertype, src, proto, dst_port, in_port, port_group), rest)| {
            let (ipag_src, traversed_router, flow, fragment_policy, action, jump, nat_action) = rest;
            RuleSpec {
                ethertype,
                src,
                proto,
                dst_port: dst_port.map(|(i, s, l)| (i, s, s + l)),
                in_port,
                port_group,
                ipag_src,
                traversed_router,
                flow,
                fragment_policy,
                action,
                jump,
                nat_action,
            }
        })
}

fn packet() -> impl Strategy<Value = (PacketMatchFields, Option<usize>, bool, bool)> {
    (
        prop_oneof![Just(IPV4), Just(ARP), Just(IPV6), Just(0x88cc)],
        prop_oneof![Just("10.0.0.5"), Just("10.1.0.5"), Just("192.168.0.1")],
        prop_oneof![Just(Some(6u8)), Just(Some(17u8)), Just(None)],
        proptest::option::of(10u16..100),
        prop_oneof![Just(Fragment::Unfragmented), Just(Fragment::First), Just(Fragment::Later)],
        proptest::option::of(0usize..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ethertype, src, proto, dport, fragment, in_port, fwd, via_router)| {
            let ipv = ethertype == IPV4 || ethertype == IPV6 || ethertype == ARP;
            let src_ip = match ethertype {
                IPV6 => Some(ip("2001:db8::5")),
                _ if ipv => Some(ip(src)),
                _ => None,
            };
            let f = PacketMatchFields {
                src_ip,
                dst_ip: src_ip,
                proto: if ipv { proto } else { None },
                src_port: if ipv && fragment != Fragment::Later { dport } else { None },
                dst_port: if ipv && fragment != Fragment::Later { dport } else { None },
                fragment: if ipv { fragment } else { Fragment::Unfragmented },
                ..PacketMatchFields::ethernet(VM_MAC, GW_MAC, ethertype)
            };
            (f, in_port, fwd, via_router)
        })
}

fn build_rule(spec: &RuleSpec, n: u128, ids: &Ids, chain: usize, chains: &[ChainId]) -> Rule {
    fn f<T>((i, v): (bool, T)) -> Field<T> {
        if i {
            Field::not(v)
        } else {
            Field::is(v)
        }
    }
    let mut cond = Condition {
        ethertype: spec.ethertype.map(f),
        src: spec.src.map(|(i, s)| f((i, net(s)))),
        proto: spec.proto.map(f),
        dst_port: spec.dst_port.map(|(i, s, e)| f((i, PortRange::new(s, e)))),
        in_ports: spec.in_port.map(|(i, p)| f((i, Box::from([ids.p[p]])))),
        port_group: spec.port_group.map(|(i, g)| f((i, ids.g[g]))),
        ip_addr_group_src: spec.ipag_src.map(|(i, a)| f((i, ids.a[a]))),
        traversed_device: spec.traversed_router.map(|i| f((i, DeviceId::Router(ids.router)))),
        flow: spec.flow.map(|fwd| if fwd { FlowDirection::Forward } else { FlowDirection::Return }),
        fragment_policy: spec.fragment_policy,
        ..Default::default()
    };
    let kind = match spec.action {
        0 => RuleKind::Accept,
        1 => RuleKind::Drop,
        2 => RuleKind::Reject,
        3 => RuleKind::Continue,
        4 => RuleKind::Return,
        5 if chain + 1 < chains.len() => RuleKind::Jump(chains[chain + 1 + spec.jump % (chains.len() - chain - 1)]),
        5 => RuleKind::Continue,
        _ => RuleKind::Nat(NatRule {
            kind: if spec.jump.is_multiple_of(2) {
                NatKind::RevDnat
            } else {
                NatKind::Snat(Box::new([NatTarget::single(ip("198.51.100.2"))]))
            },
            action: [NatAction::Accept, NatAction::Continue, NatAction::Return][usize::from(spec.nat_action)],
        }),
    };
    Rule::new(Uuid(n), cond.clone(), kind.clone()).unwrap_or_else(|_| {
        cond.fragment_policy = None;
        Rule::new(Uuid(n), cond, kind).unwrap()
    })
}

/// How a chain ended in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Accept,
    Drop,
    Reject,
    /// Returned, or ran off its end.
    Fell,
}

struct Model<'a> {
    chains: &'a [Vec<(RuleSpec, Rule)>],
    f: PacketMatchFields,
    in_port: Option<usize>,
    forward: bool,
    via_router: bool,
    nat_applies: bool,
}

impl Model<'_> {
    fn test<T: PartialEq>(c: Option<(bool, T)>, actual: Option<T>) -> bool {
        match c {
            None => true,
            Some((inv, v)) => (actual == Some(v)) != inv,
        }
    }

    fn matches(&self, s: &RuleSpec, r: &Rule) -> bool {
        let f = &self.f;
        let frag_ok = match (r.fragment_policy, f.fragment) {
            (FragmentPolicy::Any, _) => true,
            (FragmentPolicy::Header, fr) => fr != Fragment::Later,
            (FragmentPolicy::NonHeader, fr) => fr == Fragment::Later,
            (FragmentPolicy::Unfragmented, fr) => fr == Fragment::Unfragmented,
        };
        let src_ok = match s.src {
            None => true,
            Some((inv, cidr)) => f.src_ip.is_some_and(|a| net(cidr).contains(&a)) != inv,
        };
        let port_ok = match s.dst_port {
            None => true,
            Some((inv, lo, hi)) => f.dst_port.is_some_and(|p| lo <= p && p <= hi) != inv,
        };
        // Port groups: g0 = {p0, p2}, g1 = {p3}.
        let members: [&[usize]; 2] = [&[0, 2], &[3]];
        let pg_ok = match s.port_group {
            None => true,
            Some((inv, g)) => self.in_port.is_some_and(|p| members[g].contains(&p)) != inv,
        };
        // Address groups: a0 = {10.0.0.5, 2001:db8::5}, a1 = {}.
        let ipag_ok = match s.ipag_src {
            None => true,
            Some((inv, a)) => {
                (a == 0 && matches!(f.src_ip, Some(x) if x == ip("10.0.0.5") || x == ip("2001:db8::5"))) != inv
            }
        };
        frag_ok
            && s.flow.is_none_or(|fwd| fwd == self.forward)
            && Self::test(s.ethertype, Some(f.ethertype))
            && src_ok
            && Self::test(s.proto, f.proto)
            && port_ok
            && Self::test(s.in_port, self.in_port)
            && pg_ok
            && ipag_ok
            && s.traversed_router.is_none_or(|inv| self.via_router != inv)
    }

    fn run(&self, chain: usize) -> Out {
        for (s, r) in &self.chains[chain] {
            if !self.matches(s, r) {
                continue;
            }
            match &r.kind {
                RuleKind::Accept => return Out::Accept,
                RuleKind::Drop => return Out::Drop,
                RuleKind::Reject => return Out::Reject,
                RuleKind::Continue => {}
                RuleKind::Return => return Out::Fell,
                RuleKind::Jump(t) => match self.run(t.index()) {
                    Out::Fell => {}
                    out => return out,
                },
                RuleKind::Nat(n) if self.nat_applies => match n.action {
                    NatAction::Accept => return Out::Accept,
                    NatAction::Continue => {}
                    NatAction::Return => return Out::Fell,
                },
                RuleKind::Nat(_) => {}
            }
        }
        Out::Fell
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random chain programs (jumps only to later chains, so loop-free): the stack machine, NAT
    /// stops included, agrees with a recursive model of MidoNet's semantics.
    #[test]
    fn evaluation_equals_recursive_model(
        program in proptest::collection::vec(proptest::collection::vec(rule_spec(), 0..8), 1..7),
        packets in proptest::collection::vec((packet(), any::<bool>()), 1..16),
    ) {
        let (mut b, ids) = base();
        let chains: Vec<ChainId> = (0..program.len()).map(|i| b.add_chain(Uuid(0x900 + i as u128), "p")).collect();
        let mut n = 0x10_000u128;
        let mut compiled = Vec::new();
        for (ci, specs) in program.iter().enumerate() {
            let mut rules = Vec::new();
            for s in specs {
                n += 1;
                let r = build_rule(s, n, &ids, ci, &chains);
                b.add_rule(chains[ci], r.clone());
                rules.push((s.clone(), r));
            }
            compiled.push(rules);
        }
        let snap = b.build().unwrap();
        for ((f, in_port, forward, via_router), nat_applies) in packets {
            let path = [DeviceId::Router(ids.router)];
            let ctx = EvalContext {
                in_port: in_port.map(|p| ids.p[p]),
                group_port: in_port.map(|p| ids.p[p]),
                forward_flow: forward,
                traversed: if via_router { &path } else { &[] },
                ..Default::default()
            };
            let model = Model { chains: &compiled, f, in_port, forward, via_router, nat_applies };
            let want = match model.run(0) {
                Out::Accept | Out::Fell => Verdict::Accept,
                Out::Drop => Verdict::Drop,
                Out::Reject => Verdict::Reject,
            };
            let outcome = if nat_applies { NatOutcome::Applied } else { NatOutcome::NotApplied };
            let mut deps = DeviceSet::new();
            let mut got = evaluate_tracked(&snap, chains[0], &f, &ctx, &mut deps);
            let mut stops = 0;
            while let Verdict::Nat(at) = got {
                prop_assert!(matches!(snap.rule(at.rule()).kind, RuleKind::Nat(_)));
                stops += 1;
                prop_assert!(stops <= snap.rules().len());
                got = resume(&snap, &at, outcome, &f, &ctx, &mut deps);
            }
            prop_assert_eq!(got, want);
            prop_assert!(deps.contains(DeviceId::Chain(chains[0])));
        }
    }
}

#[test]
fn evaluation_state_is_small_and_copy() {
    // The whole jump stack travels in a `Verdict::Nat`; keep it small enough to pass by value.
    assert_eq!(core::mem::size_of::<Resume>(), 136);
    assert!(core::mem::size_of::<Verdict>() <= 140);
}
