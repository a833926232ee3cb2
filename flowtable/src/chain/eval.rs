//! Chain evaluation: rules in order, jumps on a fixed-depth stack, NAT rules handed out as a
//! resumable verdict. No allocation, no recursion.

use super::fields::PacketMatchFields;
use super::rule::{NatAction, RuleKind};
use crate::topology::{ChainId, DeviceId, DeviceSet, PortId, RuleId, Snapshot};

/// The deepest nesting of chains evaluation supports: the chain evaluated plus 15 nested jumps.
/// The snapshot builder refuses a chain graph with a longer path (and any cycle), so the stack
/// never overflows at run time.
pub const MAX_JUMP_DEPTH: usize = 16;

/// What the evaluation knows besides the packet's own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvalContext<'a> {
    /// The port the packet entered the current device through (`in-ports`). MidoNet passes none
    /// when it evaluates a port's own inbound/outbound chain, so `in-ports` only matches on device
    /// chains; the simulation follows that.
    pub in_port: Option<PortId>,
    /// The port the current device sends the packet out of (`out-ports`): known in a router's
    /// outfilter, after the route lookup. None in port chains, as for `in_port`.
    pub out_port: Option<PortId>,
    /// The port whose group memberships `port-group` tests: the port the packet entered the
    /// current device through, also for port chains.
    pub group_port: Option<PortId>,
    /// Conntrack's answer: the packet starts or follows a connection in its original direction
    /// (`fwd-flow`), rather than replying on a known one (`return-flow`). Only read by rules with
    /// a `flow` attribute ([`Chain::uses_conntrack`](super::Chain::uses_conntrack)).
    pub forward_flow: bool,
    /// The devices the simulation went through so far, for `traversed-device`.
    pub traversed: &'a [DeviceId],
}

/// Where evaluation stopped at a NAT rule, to go on from once the NAT stage has translated the
/// packet: a copy of the jump stack (`Copy`, 136 bytes, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resume {
    rule: RuleId,
    stack: Stack,
}

impl Resume {
    /// The NAT rule evaluation stopped at.
    pub fn rule(&self) -> RuleId {
        self.rule
    }
}

/// The result of evaluating a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet passes (an accept rule, or no decisive rule: MidoNet accepts what falls off the
    /// end of the top chain or returns from it).
    Accept,
    /// The packet is dropped.
    Drop,
    /// The packet is dropped and answered with ICMP destination unreachable, administratively
    /// prohibited (MidoNet's `sendIcmpUnreachableProhibError`).
    Reject,
    /// A NAT rule matched: the NAT stage translates the packet (or finds no state to reverse) and
    /// calls [`resume`] with the same `Resume`.
    Nat(Resume),
}

/// What the NAT stage did with the rule of a [`Verdict::Nat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatOutcome {
    /// The packet was translated: the rule's action applies (accept, continue or return).
    Applied,
    /// Nothing was translated (a reverse rule without a matching connection): the rule counts as
    /// not matching, evaluation goes on with the next rule (MidoNet's `ReverseNatRule.apply`).
    NotApplied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Frame {
    /// Next rule to evaluate.
    next: u32,
    /// One past the chain's last rule.
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stack {
    frames: [Frame; MAX_JUMP_DEPTH],
    depth: u8,
}

impl Stack {
    fn new(snap: &Snapshot, chain: ChainId) -> Stack {
        let c = snap.chain(chain);
        let mut frames = [Frame::default(); MAX_JUMP_DEPTH];
        frames[0] = Frame { next: c.first_rule, end: c.first_rule + c.rule_count };
        Stack { frames, depth: 1 }
    }

    /// Pops a frame; whether one is left.
    fn pop(&mut self) -> bool {
        self.depth -= 1;
        self.depth > 0
    }
}

/// Evaluates `chain` for a packet with fields `f`.
///
/// Rules run in order. On a match: accept, drop and reject end the evaluation; continue goes on;
/// return leaves the current chain for the rule after the jump (at top level: accept); jump enters
/// the target chain, and when that one returns or runs out of rules, goes on after the jump. A
/// matching NAT rule ends this call with [`Verdict::Nat`]. Running off the end of the top chain
/// accepts. Allocation-free.
///
/// `chain` must be a chain of `snap` (panics otherwise).
pub fn evaluate(snap: &Snapshot, chain: ChainId, f: &PacketMatchFields, ctx: &EvalContext<'_>) -> Verdict {
    evaluate_tracked(snap, chain, f, ctx, &mut DeviceSet::new())
}

/// [`evaluate`], recording in `deps` the chains entered and the port and IP address groups looked
/// into, for flow invalidation.
pub fn evaluate_tracked(
    snap: &Snapshot,
    chain: ChainId,
    f: &PacketMatchFields,
    ctx: &EvalContext<'_>,
    deps: &mut DeviceSet,
) -> Verdict {
    deps.insert(DeviceId::Chain(chain));
    run(snap, Stack::new(snap, chain), f, ctx, deps)
}

/// Goes on after a [`Verdict::Nat`].
///
/// `f` are the packet's fields *after* the translation: the conditions of the following rules see
/// the packet as modified by the NAT rule, as MidoNet evaluates them on the modified match. With
/// [`NatOutcome::Applied`], the rule's action applies: accept ends with [`Verdict::Accept`],
/// continue goes on with the next rule, return leaves the rule's chain. With
/// [`NatOutcome::NotApplied`] evaluation goes on with the next rule.
pub fn resume(
    snap: &Snapshot,
    at: &Resume,
    outcome: NatOutcome,
    f: &PacketMatchFields,
    ctx: &EvalContext<'_>,
    deps: &mut DeviceSet,
) -> Verdict {
    let mut stack = at.stack;
    if outcome == NatOutcome::Applied {
        if let RuleKind::Nat(nat) = &snap.rule(at.rule).kind {
            match nat.action {
                NatAction::Accept => return Verdict::Accept,
                NatAction::Continue => {}
                NatAction::Return => {
                    if !stack.pop() {
                        return Verdict::Accept;
                    }
                }
            }
        }
    }
    run(snap, stack, f, ctx, deps)
}

fn run(
    snap: &Snapshot,
    mut stack: Stack,
    f: &PacketMatchFields,
    ctx: &EvalContext<'_>,
    deps: &mut DeviceSet,
) -> Verdict {
    loop {
        let top = &mut stack.frames[usize::from(stack.depth) - 1];
        if top.next == top.end {
            // Off the end of a chain: back to the caller, or accept at top level.
            if !stack.pop() {
                return Verdict::Accept;
            }
            continue;
        }
        let id = RuleId(top.next);
        top.next += 1;
        let rule = snap.rule(id);
        if !rule.condition.matches(rule.fragment_policy, snap, f, ctx, deps) {
            continue;
        }
        match &rule.kind {
            RuleKind::Accept => return Verdict::Accept,
            RuleKind::Drop => return Verdict::Drop,
            RuleKind::Reject => return Verdict::Reject,
            RuleKind::Continue => {}
            RuleKind::Return => {
                if !stack.pop() {
                    return Verdict::Accept;
                }
            }
            RuleKind::Jump(target) => {
                deps.insert(DeviceId::Chain(*target));
                let c = snap.chain(*target);
                // The builder bounds every jump path by MAX_JUMP_DEPTH; stay total regardless.
                if usize::from(stack.depth) < MAX_JUMP_DEPTH {
                    stack.frames[usize::from(stack.depth)] =
                        Frame { next: c.first_rule, end: c.first_rule + c.rule_count };
                    stack.depth += 1;
                }
            }
            RuleKind::Nat(_) => return Verdict::Nat(Resume { rule: id, stack }),
        }
    }
}
