//! Why a topology operation was refused: one variant per reason, each with its HTTP status.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use thiserror::Error;
use uuid::Uuid;

use crate::model::PortType;
use crate::store::{Kind, StoreError};

/// A refused or failed topology operation. Nothing was written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The object named by the request does not exist (404).
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// A body field names an object that does not exist (404, as MidoNet's ZOOM `NotFoundException`).
    #[error("{field}: {kind} {id} not found")]
    ReferenceNotFound {
        /// The JSON field.
        field: &'static str,
        /// Kind looked for.
        kind: Kind,
        /// Id looked for.
        id: Uuid,
    },
    /// A required field is absent (400).
    #[error("{0} is required")]
    MissingField(&'static str),
    /// Not an IP address (of the right family) (400).
    #[error("{field}: invalid address {value:?}")]
    InvalidAddress {
        /// The JSON field.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// A prefix length out of range (400).
    #[error("{field}: invalid prefix length {length}")]
    InvalidPrefixLength {
        /// The JSON field.
        field: &'static str,
        /// What was sent.
        length: u32,
    },
    /// A router port's address outside its network (400).
    #[error("port address {address} is outside network {network}")]
    AddressOutsideNetwork {
        /// Port address.
        address: Ipv4Addr,
        /// Network.
        network: Ipv4Net,
    },
    /// Not a MAC address (400).
    #[error("{field}: invalid MAC address {value:?}")]
    InvalidMac {
        /// The JSON field.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// Two members of a list that are addressed by name have the same one (400).
    #[error("{field}: the name {name:?} is used twice (names address the members, so each must be unique)")]
    DuplicateName {
        /// The JSON field holding the list.
        field: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A value outside its allowed set (400).
    #[error("{field}: invalid value {value:?}")]
    InvalidValue {
        /// The JSON field.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// A range with start after end or beyond its maximum (400).
    #[error("{field}: invalid range {start}..{end}")]
    InvalidRange {
        /// The JSON field.
        field: &'static str,
        /// Start.
        start: u32,
        /// End.
        end: u32,
    },
    /// A name longer than 255 characters (400).
    #[error("name is {0} characters long, at most 255 allowed")]
    NameTooLong(usize),
    /// A rule position outside 1..=n+1 (400).
    #[error("rule position {position} out of range 1..={max}")]
    InvalidPosition {
        /// What was sent.
        position: u32,
        /// Largest allowed.
        max: u32,
    },
    /// A field that cannot change on update (400).
    #[error("{0} cannot be changed")]
    ImmutableField(&'static str),
    /// A port type that does not fit the device it is created on (400).
    #[error("a {0:?} port cannot be created on this device")]
    WrongPortType(PortType),
    /// A `Normal` route without `nextHopPort` (400).
    #[error("a Normal route needs nextHopPort")]
    NextHopPortRequired,
    /// A route's `nextHopPort` is not a port of the route's router (400).
    #[error("port {port} is not a port of router {router}")]
    PortNotOnRouter {
        /// The port.
        port: Uuid,
        /// The route's router.
        router: Uuid,
    },
    /// A jump rule targeting its own chain (400).
    #[error("a rule of chain {0} cannot jump to it")]
    SelfJump(Uuid),
    /// A jump rule that would close a loop of jumps (400).
    #[error("a jump from chain {chain} to chain {target} would loop: {target} jumps back to {chain}")]
    JumpLoop {
        /// The rule's chain.
        chain: Uuid,
        /// The chain it jumps to.
        target: Uuid,
    },
    /// A jump rule that would make a path of jumps nest more chains than evaluation supports (400).
    #[error("a jump from chain {chain} to chain {target} would nest {depth} chains, at most {max} allowed")]
    JumpTooDeep {
        /// The rule's chain.
        chain: Uuid,
        /// The chain it jumps to.
        target: Uuid,
        /// Chains on the longest path through the jump.
        depth: u32,
        /// The limit.
        max: usize,
    },
    /// A GRE or VXLAN tunnel-zone member with an IPv6 address: tunnels run over IPv4 (400).
    #[error("ipAddress: {0} is not IPv4; GRE and VXLAN tunnels run over IPv4")]
    TunnelAddressNotIpv4(IpAddr),
    /// Linking a port to itself (400).
    #[error("port {0} cannot be linked to itself")]
    LinkToSelf(Uuid),
    /// Linking two ports of the same device (400).
    #[error("ports of the same device cannot be linked")]
    LinkSameDevice,
    /// Linking two bridge ports (400).
    #[error("two bridge ports cannot be linked")]
    BridgeToBridgeLink,
    /// A client-chosen id already in use (409).
    #[error("{kind} {id} already exists")]
    IdInUse {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// A tunnel key already used by another port (409).
    #[error("tunnel key {0} is in use")]
    TunnelKeyInUse(u64),
    /// Every tunnel key is in use (409).
    #[error("no free tunnel key left (all of 1..=0xffffff are in use)")]
    NoFreeTunnelKey,
    /// Deleting a port a rule names in inPorts, outPorts or targetPortId (409).
    #[error(
        "port {port} is named by rule {rule} (inPorts, outPorts or targetPortId); delete or replace the rule first"
    )]
    PortNamedByRule {
        /// The port.
        port: Uuid,
        /// The rule.
        rule: Uuid,
    },
    /// Deleting a router or bridge a rule names as traversedDevice (409).
    #[error("device {device} is the traversedDevice of rule {rule}; delete or replace the rule first")]
    DeviceNamedByRule {
        /// The router or bridge.
        device: Uuid,
        /// The rule.
        rule: Uuid,
    },
    /// A MAC already used by another port (409).
    #[error("MAC {0} is in use")]
    MacInUse(String),
    /// The port is already linked (409).
    #[error("port {0} is already linked")]
    PortAlreadyLinked(Uuid),
    /// A bound (exterior) port cannot be linked (409).
    #[error("port {0} is bound to a host interface")]
    PortBound(Uuid),
    /// A linked (interior) port cannot be bound (409).
    #[error("port {0} is linked")]
    PortLinked(Uuid),
    /// Another port is bound to that host interface (409).
    #[error("interface {interface} of host {host} is bound to another port")]
    InterfaceInUse {
        /// Host.
        host: Uuid,
        /// Interface name.
        interface: String,
    },
    /// The port is bound on another host; unbind it there first (409).
    #[error("port {port} is bound on host {host}; unbind it there first")]
    BoundElsewhere {
        /// Port.
        port: Uuid,
        /// The host it is bound on.
        host: Uuid,
    },
    /// The port is not bound to that host (404).
    #[error("port {port} is not bound to host {host}")]
    NotBound {
        /// Port.
        port: Uuid,
        /// Host.
        host: Uuid,
    },
    /// Deleting a host that is alive (409).
    #[error("host {0} is alive")]
    HostAlive(Uuid),
    /// Deleting a host with ports bound to it (409).
    #[error("host {0} has port bindings")]
    HostHasBindings(Uuid),
    /// Already a member of the tunnel zone or port group (409).
    #[error("{member} is already a member of {group}")]
    AlreadyMember {
        /// Zone or group.
        group: Uuid,
        /// Host or port.
        member: Uuid,
    },
    /// Not a member of the tunnel zone or port group (404).
    #[error("{member} is not a member of {group}")]
    NotMember {
        /// Zone or group.
        group: Uuid,
        /// Host or port.
        member: Uuid,
    },
    /// The address is already in the IP address group (409).
    #[error("{addr} is already in group {group}")]
    AddressInGroup {
        /// Group.
        group: Uuid,
        /// Address.
        addr: IpAddr,
    },
    /// The address is not in the IP address group (404).
    #[error("{addr} is not in group {group}")]
    AddressNotInGroup {
        /// Group.
        group: Uuid,
        /// Address.
        addr: IpAddr,
    },
    /// The router already has a BGP peer at that address (409).
    #[error("a BGP peer with address {0} exists on this router")]
    BgpPeerExists(IpAddr),
    /// The router already announces that network (409).
    #[error("BGP network {0} exists on this router")]
    BgpNetworkExists(Ipv4Net),
    /// The write would leave a topology the snapshot compiler refuses (400; 409 when the refusal is
    /// about objects the write did not touch, or a clash between objects).
    #[error("the data path cannot use the result: {reason}")]
    NotCompilable {
        /// The compiler's message.
        reason: String,
        /// Whether the write conflicts with other objects (409) rather than being bad itself (400).
        conflict: bool,
    },
    /// The system state is READONLY (503).
    #[error("the system is read-only")]
    ReadOnly,
    /// Lost the race against other writers too many times (503).
    #[error("too much concurrent modification, try again")]
    Busy,
    /// A stored document that does not decode (500).
    #[error("stored {kind} does not decode: {detail}")]
    Corrupt {
        /// Kind.
        kind: Kind,
        /// Decoder message.
        detail: String,
    },
    /// The store failed (500, 503 for a lost backend).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TopologyError {
    pub(super) fn not_found(kind: Kind, id: Uuid) -> Self {
        TopologyError::NotFound { kind, id: id.to_string() }
    }

    /// The HTTP status the REST layer answers with.
    pub fn status(&self) -> u16 {
        use TopologyError::*;
        match self {
            NotFound { .. }
            | ReferenceNotFound { .. }
            | NotBound { .. }
            | NotMember { .. }
            | AddressNotInGroup { .. } => 404,
            MissingField(_)
            | InvalidAddress { .. }
            | InvalidPrefixLength { .. }
            | AddressOutsideNetwork { .. }
            | InvalidMac { .. }
            | InvalidValue { .. }
            | DuplicateName { .. }
            | InvalidRange { .. }
            | NameTooLong(_)
            | InvalidPosition { .. }
            | ImmutableField(_)
            | WrongPortType(_)
            | NextHopPortRequired
            | PortNotOnRouter { .. }
            | SelfJump(_)
            | JumpLoop { .. }
            | JumpTooDeep { .. }
            | TunnelAddressNotIpv4(_)
            | LinkToSelf(_)
            | LinkSameDevice
            | BridgeToBridgeLink => 400,
            IdInUse { .. }
            | TunnelKeyInUse(_)
            | NoFreeTunnelKey
            | PortNamedByRule { .. }
            | DeviceNamedByRule { .. }
            | MacInUse(_)
            | PortAlreadyLinked(_)
            | PortBound(_)
            | PortLinked(_)
            | InterfaceInUse { .. }
            | BoundElsewhere { .. }
            | HostAlive(_)
            | HostHasBindings(_)
            | AlreadyMember { .. }
            | AddressInGroup { .. }
            | BgpPeerExists(_)
            | BgpNetworkExists(_) => 409,
            NotCompilable { conflict: false, .. } => 400,
            NotCompilable { conflict: true, .. } => 409,
            ReadOnly | Busy => 503,
            Store(StoreError::Backend(_)) => 503,
            Store(StoreError::TooLarge { .. }) => 413,
            Corrupt { .. } | Store(_) => 500,
        }
    }
}
