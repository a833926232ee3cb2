//! Rule chains with MidoNet's semantics (seeds A7, A11, A12).
//!
//! A chain is a list of rules; a rule is a [`Condition`] (every attribute of the seeds' Table 7.2,
//! each with its own `!`) and a [`RuleKind`]: accept, drop, reject, continue, return, jump, or one
//! of the NAT types (dnat, snat, rev_dnat, rev_snat with targets `IP[-IP][:port[-port]]` and an
//! action accept / continue / return). [`Rule::new`] validates a rule and resolves its fragment
//! policy; the [`SnapshotBuilder`](crate::topology::SnapshotBuilder) checks the ids a rule names,
//! refuses jump loops and bounds jump depth.
//!
//! [`evaluate`] runs a chain for one packet's [`PacketMatchFields`] and an [`EvalContext`], with a
//! fixed-depth jump stack and no allocation, and returns a [`Verdict`].
//!
//! # NAT and "the packet as modified by earlier rules"
//!
//! Translating belongs to the NAT stage, which owns the per-core connection state. Evaluation stops
//! at the first matching NAT rule with [`Verdict::Nat`], which carries a [`Resume`]: the jump stack
//! at that rule, a small `Copy` value. The NAT stage translates the packet (or, for a reverse rule,
//! finds no connection), rewrites the [`PacketMatchFields`] accordingly and calls [`resume`] with
//! the new fields: the rule's action (accept, continue, return) then applies, and the following
//! conditions see the translated addresses and ports. A chain can thus stop several times, once per
//! NAT rule that matches, with no recursion and no allocation on either side.
//!
//! # Differences from MidoNet, on purpose
//!
//! * MidoNet skips, at run time, a jump to a chain already entered during the same evaluation (its
//!   guard against loops). Loops are refused when the snapshot is built here, so a chain reached by
//!   two different jumps is evaluated both times; the result only differs if a NAT rule with
//!   action continue changed the packet between the two.
//! * Non-IP packets and packets without L4 ports do not match a set `src-port` / `dst-port` (MidoNet
//!   compares a port of 0, which its REST validation keeps out of ranges, except ICMP type 0).
//! * The whole-condition inversion (`conjunctionInv`) of MidoNet's model is not in the seeds and is
//!   not offered.

mod condition;
mod eval;
mod fields;
mod rule;

pub use self::condition::{
    parse_ethertype, Condition, Field, FlowDirection, FragmentPolicy, MacMask, MacMaskSyntax, MacMatch, PortRange,
};
pub use self::eval::{evaluate, evaluate_tracked, resume, EvalContext, NatOutcome, Resume, Verdict, MAX_JUMP_DEPTH};
pub use self::fields::PacketMatchFields;
pub use self::rule::{Chain, NatAction, NatKind, NatRule, NatTarget, Rule, RuleError, RuleKind};

#[cfg(test)]
mod tests;
