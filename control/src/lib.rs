//! control: the topology model and its validation, the stores (embedded and ZooKeeper), the
//! MidoNet v5 REST API, the BGP speaker, and the compiler from topology to the immutable snapshot
//! the worker cores read. It never touches a packet.
//!
//! Built so far: [`model`] (the MidoNet v5 resources as serde types), [`Store`] with the embedded
//! redb implementation [`EmbeddedStore`], and [`Topology`], which validates every create, update and
//! delete with MidoNet semantics and commits its whole consequence in one store transaction.
//! [`rest`] serves the MidoNet v5 REST API (axum) over a shared store: [`rest::app`]. No ZooKeeper yet.
//!
//! Choices, where the REST reference leaves room:
//! - Unknown JSON fields are ignored, as MidoNet's Jackson mapper does (clients PUT back the link
//!   fields they read). The polymorphic `type` tags of ports and rules are required and strict.
//! - Errors are [`TopologyError`], one variant per reason, each with [`TopologyError::status`]: a
//!   missing object named by the path or by a body field is 404 (MidoNet's `NotFoundException`), bad
//!   input 400, a clash with existing state 409, READONLY 503.
//! - Router ports get the local /32 route (`Local`) and the connected subnet route (`Normal`), both via
//!   the port, weight 100, in the same transaction as the port; ids are UUID v4, MACs `02:` random and
//!   unique, tunnel keys the lowest free one in 1..=0xFFFFFF unless the client picks a free one.
//! - Every write that changes the topology is compiled before it commits (the compile the feed runs):
//!   what the snapshot compiler refuses is refused (400, or 409 when it conflicts with other objects).
//! - Cascades: a router takes its ports, routes, BGP peers and BGP networks; a bridge its ports; a port its routes (those whose
//!   `nextHopPort` it is), its link (the peer is unlinked) and its port-group memberships; a chain its
//!   rules, the jump rules targeting it and every filter reference to it; a host its tunnel-zone
//!   memberships. Refusals: deleting a host that is alive or has bound ports; deleting a port a rule
//!   names (inPorts, outPorts, targetPortId) or a device a rule names as traversedDevice; linking a
//!   bound port, binding a linked port. A bound port may be deleted (MidoNet v5 allows it).
//! - Stored documents are the JSON of the model types at `/midonet/zoom/0/models/<Kind>/<id>`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compile;
pub mod model;
pub mod rest;
pub mod store;
mod topology;

pub use model::{
    BgpNetwork, BgpPeer, Bridge, Chain, Condition, FlowAction, FragmentPolicy, Host, HostInterfacePort, Interface,
    IpAddrGroup, IpAddrGroupAddr, IpAddrPorts, NatTarget, Port, PortGroup, PortGroupPort, PortLink, PortType, Range,
    Resource, Route, RouteType, Router, Rule, RuleType, SystemState, Tenant, TunnelZone, TunnelZoneHost,
    TunnelZoneType,
};
pub use rest::{app, app_with_store, Account, ApiError, AuthProvider, DynStore, LocalAuth, MockAuth, Role, Session};
pub use store::{Action, Change, ChangeSet, EmbeddedStore, Kind, Op, Store, StoreError, MODELS_ROOT};
pub use topology::{Topology, TopologyError};
