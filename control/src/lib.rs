//! control: the topology model and its validation, the stores (embedded and ZooKeeper), the
//! MidoNet v5 REST API, the BGP speaker, and the compiler from topology to the immutable snapshot
//! the worker cores read. It never touches a packet.
//!
//! Empty until the control-plane issue; it is in the workspace so the layout, the lints and CI
//! cover it from the start.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
