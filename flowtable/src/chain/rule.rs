//! Rules and chains: actions, NAT rule types and targets, and the validation of a rule on its own
//! (the references a rule makes to other devices are checked by the snapshot builder).

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use super::condition::{Condition, FragmentPolicy};
use crate::topology::{ChainId, RuleId, Uuid};

/// Why a rule is refused. One variant per reason; the REST layer maps them to its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule with L4 ports matches only packets that carry them (seeds A12).
    #[error("fragment policy {0:?} is not allowed on a rule with src-port or dst-port (only header or unfragmented)")]
    FragmentPolicyWithL4Ports(FragmentPolicy),
    /// A dnat/snat rule whose target is not a single IP without ports needs whole packets (seeds A12).
    #[error("fragment policy {0:?} is not allowed on a NAT rule whose target is not a single IP without ports (only unfragmented)")]
    FragmentPolicyNatNeedsUnfragmented(FragmentPolicy),
    /// A port range whose start is after its end.
    #[error("port range {start}-{end} is empty")]
    EmptyPortRange {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// `in-ports` or `out-ports` with no port.
    #[error("a port list condition names no port")]
    EmptyPortList,
    /// A dnat or snat rule without a target.
    #[error("a dnat or snat rule needs at least one target")]
    NatWithoutTarget,
    /// A NAT target's address range is empty (`10.0.0.9-10.0.0.1`).
    #[error("NAT target address range runs backwards")]
    NatTargetAddressRangeReversed,
    /// A NAT target's addresses are of two families.
    #[error("NAT target addresses mix IPv4 and IPv6")]
    NatTargetMixedFamilies,
    /// A NAT target's port range is empty or starts at 0.
    #[error("NAT target port range {start}-{end} is empty or starts at 0")]
    NatTargetBadPortRange {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// A NAT target's text does not parse (`IP[-IP][:port[-port]]`).
    #[error("NAT target is not IP[-IP][:port[-port]]")]
    NatTargetSyntax,
}

/// What a matching NAT rule does once the packet is translated (Table 7.1 `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatAction {
    /// Stop: the packet is accepted.
    Accept,
    /// Go on with the next rule, on the translated packet.
    Continue,
    /// Return from this chain to the rule after the jump (or accept at top level).
    Return,
}

/// The four NAT rule types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Rewrite the destination to one of the targets, keeping connection state.
    Dnat(Box<[NatTarget]>),
    /// Rewrite the source to one of the targets, keeping connection state.
    Snat(Box<[NatTarget]>),
    /// Undo a DNAT on the reply direction (needs the connection's state).
    RevDnat,
    /// Undo an SNAT on the reply direction (needs the connection's state).
    RevSnat,
}

impl NatKind {
    /// The targets of a forward rule (empty for reverse rules).
    pub fn targets(&self) -> &[NatTarget] {
        match self {
            NatKind::Dnat(t) | NatKind::Snat(t) => t,
            NatKind::RevDnat | NatKind::RevSnat => &[],
        }
    }
}

/// A NAT rule: its type and targets, and the action after translation. Evaluation stops at a
/// matching NAT rule and hands it to the NAT stage ([`Verdict::Nat`](super::Verdict::Nat)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatRule {
    /// Type and targets.
    pub kind: NatKind,
    /// What to do after translating.
    pub action: NatAction,
}

/// A NAT target `IP[-IP][:port[-port]]`: an address range and an optional port range (ports
/// `0-0` stand for "keep the port").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatTarget {
    /// First address.
    pub addr_start: IpAddr,
    /// Last address (inclusive); equal to `addr_start` for one address.
    pub addr_end: IpAddr,
    /// First port, 0 when no port is given.
    pub port_start: u16,
    /// Last port (inclusive), 0 when no port is given.
    pub port_end: u16,
}

impl NatTarget {
    /// One address, ports kept: a floating IP.
    pub fn single(addr: IpAddr) -> Self {
        NatTarget { addr_start: addr, addr_end: addr, port_start: 0, port_end: 0 }
    }

    /// Whether this is one address without ports.
    pub fn is_single_ip_without_ports(&self) -> bool {
        self.addr_start == self.addr_end && self.port_start == 0 && self.port_end == 0
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), RuleError> {
        match (self.addr_start, self.addr_end) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {}
            _ => return Err(RuleError::NatTargetMixedFamilies),
        }
        if self.addr_start > self.addr_end {
            return Err(RuleError::NatTargetAddressRangeReversed);
        }
        let no_ports = self.port_start == 0 && self.port_end == 0;
        if !no_ports && (self.port_start == 0 || self.port_start > self.port_end) {
            return Err(RuleError::NatTargetBadPortRange { start: self.port_start, end: self.port_end });
        }
        Ok(())
    }
}

impl fmt::Display for NatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = self.addr_start.is_ipv6() && self.port_start != 0;
        let addr = |f: &mut fmt::Formatter<'_>, a: IpAddr| if v6 { write!(f, "[{a}]") } else { write!(f, "{a}") };
        addr(f, self.addr_start)?;
        if self.addr_end != self.addr_start {
            f.write_str("-")?;
            addr(f, self.addr_end)?;
        }
        if self.port_start != 0 {
            write!(f, ":{}", self.port_start)?;
            if self.port_end != self.port_start {
                write!(f, "-{}", self.port_end)?;
            }
        }
        Ok(())
    }
}

impl FromStr for NatTarget {
    type Err = RuleError;

    /// Parses Table 7.1's `IP[-IP][:port[-port]]`. IPv6 addresses take brackets when a port
    /// follows (`[2001:db8::1]-[2001:db8::9]:1024-2048`). The result is validated.
    fn from_str(s: &str) -> Result<Self, RuleError> {
        let s = s.trim();
        let (addrs, ports) = if s.starts_with('[') {
            // Bracketed IPv6: the ports follow the last ']'.
            match s.rfind(']') {
                Some(i) => match s[i + 1..].strip_prefix(':') {
                    Some(p) => (&s[..=i], Some(p)),
                    None if i + 1 == s.len() => (s, None),
                    None => return Err(RuleError::NatTargetSyntax),
                },
                None => return Err(RuleError::NatTargetSyntax),
            }
        } else if s.matches(':').count() == 1 {
            // IPv4 with ports.
            let (a, p) = s.split_once(':').ok_or(RuleError::NatTargetSyntax)?;
            (a, Some(p))
        } else {
            (s, None)
        };
        let addr = |t: &str| {
            let t = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(t);
            t.parse::<IpAddr>().map_err(|_| RuleError::NatTargetSyntax)
        };
        // An IPv6 range without brackets splits on the '-' between two addresses.
        let (a, b) = match addrs.split_once('-') {
            Some((a, b)) => (addr(a)?, addr(b)?),
            None => {
                let a = addr(addrs)?;
                (a, a)
            }
        };
        let port = |t: &str| t.parse::<u16>().map_err(|_| RuleError::NatTargetSyntax);
        let (ps, pe) = match ports {
            None => (0, 0),
            Some(p) => match p.split_once('-') {
                Some((x, y)) => (port(x)?, port(y)?),
                None => {
                    let x = port(p)?;
                    (x, x)
                }
            },
        };
        let t = NatTarget { addr_start: a, addr_end: b, port_start: ps, port_end: pe };
        t.validate()?;
        Ok(t)
    }
}

/// What a rule does when its condition matches (Table 7.1 `type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Stop: the packet passes.
    Accept,
    /// Stop: the packet is dropped.
    Drop,
    /// Stop: the packet is dropped and answered with ICMP administratively prohibited.
    Reject,
    /// Go on with the next rule (useful with meters and traces).
    Continue,
    /// Return to the rule after the jump that entered this chain (top level: accept).
    Return,
    /// Evaluate the target chain; if it returns or runs out of rules, go on with the next rule.
    Jump(ChainId),
    /// dnat, snat, rev_dnat, rev_snat.
    Nat(NatRule),
}

/// A validated rule: its condition, its kind and its resolved fragment policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// MidoNet id.
    pub uuid: Uuid,
    /// The condition as configured (with port lists sorted).
    pub condition: Condition,
    /// The fragment policy in force: the configured one, or the default.
    pub fragment_policy: FragmentPolicy,
    /// The action.
    pub kind: RuleKind,
}

impl Rule {
    /// Validates a rule and resolves its fragment policy (seeds A12, MidoNet's REST validation):
    ///
    /// * the default is `Any`;
    /// * a rule with `src-port` or `dst-port` defaults to `Header` and refuses `Any` and `NonHeader`
    ///   (a later fragment has no ports to compare). The seeds write "src or dst"; MidoNet's own
    ///   validation (`hasL4Fields`) and the seeds' Example 1, where a drop rule with `src` and `dst`
    ///   must still catch the non-header fragment, show that the L4 ports are meant;
    /// * a dnat or snat rule whose targets are not one single IP without ports (or that has L4
    ///   ports) defaults to `Unfragmented` and allows nothing else: it allocates ports, and a
    ///   fragment's ports are not where the translation would need them.
    pub fn new(uuid: Uuid, mut condition: Condition, kind: RuleKind) -> Result<Rule, RuleError> {
        for r in [&condition.src_port, &condition.dst_port].into_iter().flatten() {
            if r.value.start > r.value.end {
                return Err(RuleError::EmptyPortRange { start: r.value.start, end: r.value.end });
            }
        }
        for list in [&mut condition.in_ports, &mut condition.out_ports].into_iter().flatten() {
            if list.value.is_empty() {
                return Err(RuleError::EmptyPortList);
            }
            let mut v = list.value.to_vec();
            v.sort_unstable();
            v.dedup();
            list.value = v.into_boxed_slice();
        }
        for net in [&mut condition.src, &mut condition.dst].into_iter().flatten() {
            net.value = net.value.trunc();
        }
        let l4 = condition.has_l4_fields();
        let nat_unfragmented_only = match &kind {
            RuleKind::Nat(NatRule { kind: k @ (NatKind::Dnat(_) | NatKind::Snat(_)), .. }) => {
                let targets = k.targets();
                if targets.is_empty() {
                    return Err(RuleError::NatWithoutTarget);
                }
                for t in targets {
                    t.validate()?;
                }
                !(targets.len() == 1 && targets[0].is_single_ip_without_ports()) || l4
            }
            _ => false,
        };
        let fragment_policy = match (condition.fragment_policy, nat_unfragmented_only, l4) {
            (None, true, _) => FragmentPolicy::Unfragmented,
            (Some(FragmentPolicy::Unfragmented), true, _) => FragmentPolicy::Unfragmented,
            (Some(p), true, _) => return Err(RuleError::FragmentPolicyNatNeedsUnfragmented(p)),
            (None, false, true) => FragmentPolicy::Header,
            (Some(p @ (FragmentPolicy::Any | FragmentPolicy::NonHeader)), false, true) => {
                return Err(RuleError::FragmentPolicyWithL4Ports(p))
            }
            (Some(p), false, _) => p,
            (None, false, false) => FragmentPolicy::Any,
        };
        Ok(Rule { uuid, condition, fragment_policy, kind })
    }
}

/// A rule chain: a name and a contiguous run of the snapshot's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// MidoNet id.
    pub uuid: Uuid,
    /// Index in the snapshot.
    pub id: ChainId,
    /// Name (`OS_SG_<uuid>_INGRESS`, ...), for reporting.
    pub name: Box<str>,
    pub(crate) first_rule: u32,
    pub(crate) rule_count: u32,
    /// Longest chain of jumps from here, this chain included (1 without jumps).
    pub(crate) depth: u32,
    /// Whether this chain, or a chain it jumps to, has a `flow` attribute (needs conntrack).
    pub(crate) uses_conntrack: bool,
}

impl Chain {
    /// The ids of the chain's rules, in order.
    pub fn rule_ids(&self) -> impl ExactSizeIterator<Item = RuleId> + '_ {
        (self.first_rule..self.first_rule + self.rule_count).map(RuleId)
    }

    /// Whether evaluating this chain can depend on the forward/return flag, so the caller must
    /// look the connection up before evaluating (and only then).
    pub fn uses_conntrack(&self) -> bool {
        self.uses_conntrack
    }

    /// The longest run of nested chains evaluating this one can enter, itself included.
    pub fn jump_depth(&self) -> u32 {
        self.depth
    }
}
