//! control: the topology model and its validation, the stores (embedded and ZooKeeper), the
//! MidoNet v5 REST API, the BGP speaker, and the compiler from topology to the immutable snapshot
//! the worker cores read. It never touches a packet.
//!
//! Built so far: [`model`] (the MidoNet v5 resources as serde types), [`Store`] with the embedded
//! redb implementation [`EmbeddedStore`], and [`Topology`], which validates every create, update and
//! delete with MidoNet semantics and commits its whole consequence in one store transaction.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod model;
pub mod store;
mod topology;

pub use model::{
    Bridge, Chain, Condition, FlowAction, FragmentPolicy, Host, HostInterfacePort, Interface, IpAddrGroup,
    IpAddrGroupAddr, IpAddrPorts, NatTarget, Port, PortGroup, PortGroupPort, PortLink, PortType, Range, Resource,
    Route, RouteType, Router, Rule, RuleType, SystemState, Tenant, TunnelZone, TunnelZoneHost, TunnelZoneType,
};
pub use store::{Action, Change, ChangeSet, EmbeddedStore, Kind, Op, Store, StoreError, MODELS_ROOT};
pub use topology::{Topology, TopologyError};
