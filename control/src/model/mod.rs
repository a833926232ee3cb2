//! The MidoNet v5 resources as serde types, with their JSON schemas (utoipa `ToSchema`, for the
//! OpenAPI document: `#[schema]` attributes only where serde says too little).
//!
//! JSON names follow `../shared/reference/midonet-rest-api.md` exactly (camelCase, Java field names).
//! Unknown fields are **ignored** on input, as MidoNet's Jackson mapper does: clients such as
//! `midonetclient` PUT back the whole object they read, including the server-computed link fields
//! (`uri`, `ports`, `routes`, ...), so rejecting unknown fields would break them.
//!
//! The same types are the documents kept in the stores. A few fields are back-references MidoNet keeps
//! hidden from REST (`@JsonIgnore` in the Java models, proto fields in ZOOM): `Chain::rule_ids`,
//! `PortGroup::port_ids`, `TunnelZone::members`, `IpAddrGroup::ip_addr_ports`. The topology service owns
//! them: values a client sends for them are ignored on create and update.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::Kind;

fn yes() -> bool {
    true
}

/// A model type kept in a store under `/midonet/zoom/0/models/<Kind>/<id>`.
pub trait Resource: Serialize + DeserializeOwned + Clone {
    /// The store kind (the ZOOM protobuf simple name).
    const KIND: Kind;
    /// The store id of this object (a UUID string for everything but tenants).
    fn key(&self) -> String;
}

macro_rules! uuid_resource {
    ($t:ty, $kind:expr) => {
        impl Resource for $t {
            const KIND: Kind = $kind;
            fn key(&self) -> String {
                self.id.to_string()
            }
        }
    };
}

/// A virtual router (`Router-v3`, ZOOM `Router`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Owning tenant (a Keystone project id, free text).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name, 0..255 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Administrative state (default up).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub admin_state_up: bool,
    /// Chain applied to packets entering the router.
    #[serde(default)]
    pub inbound_filter_id: Option<Uuid>,
    /// Chain applied to packets leaving the router.
    #[serde(default)]
    pub outbound_filter_id: Option<Uuid>,
    /// Load balancer attached to this router.
    #[serde(default)]
    pub load_balancer_id: Option<Uuid>,
    /// Local BGP AS number.
    #[serde(default)]
    pub as_number: Option<u32>,
    /// Inbound mirrors.
    #[serde(default)]
    pub inbound_mirror_ids: Vec<Uuid>,
    /// Outbound mirrors.
    #[serde(default)]
    pub outbound_mirror_ids: Vec<Uuid>,
    /// Local redirect chain.
    #[serde(default)]
    pub local_redirect_chain_id: Option<Uuid>,
    /// Forward chain.
    #[serde(default)]
    pub forward_chain_id: Option<Uuid>,
}
uuid_resource!(Router, Kind::Router);

/// A virtual bridge (`Bridge-v4`, ZOOM `Network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bridge {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Owning tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name, 0..255 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Administrative state (default up).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub admin_state_up: bool,
    /// Inbound chain.
    #[serde(default)]
    pub inbound_filter_id: Option<Uuid>,
    /// Outbound chain.
    #[serde(default)]
    pub outbound_filter_id: Option<Uuid>,
    /// VXLAN ports of this bridge.
    #[serde(default)]
    pub vx_lan_port_ids: Vec<Uuid>,
    /// Inbound mirrors.
    #[serde(default)]
    pub inbound_mirror_ids: Vec<Uuid>,
    /// Outbound mirrors.
    #[serde(default)]
    pub outbound_mirror_ids: Vec<Uuid>,
    /// QoS policy.
    #[serde(default)]
    pub qos_policy_id: Option<Uuid>,
}
uuid_resource!(Bridge, Kind::Network);

/// The JSON `type` tag of a port (`PortType.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum PortType {
    /// A router port (v5 form).
    Router,
    /// A bridge port (v5 form).
    Bridge,
    /// Legacy exterior router port.
    ExteriorRouter,
    /// Legacy interior router port.
    InteriorRouter,
    /// Legacy exterior bridge port.
    ExteriorBridge,
    /// Legacy interior bridge port.
    InteriorBridge,
    /// A VXLAN port of a bridge.
    Vxlan,
}

impl PortType {
    /// True for the router port types.
    pub fn is_router(self) -> bool {
        matches!(self, PortType::Router | PortType::ExteriorRouter | PortType::InteriorRouter)
    }
}

/// A router or bridge port (`Port-v3`, ZOOM `Port`). One struct for all types: the type-specific fields
/// are `None` (and not serialised) on the other types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Port type (the polymorphic tag).
    #[serde(rename = "type")]
    pub port_type: PortType,
    /// The router or bridge (out: taken from the URI the port is created under).
    #[serde(default)]
    pub device_id: Option<Uuid>,
    /// Administrative state (default up).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub admin_state_up: bool,
    /// Inbound chain.
    #[serde(default)]
    pub inbound_filter_id: Option<Uuid>,
    /// Outbound chain.
    #[serde(default)]
    pub outbound_filter_id: Option<Uuid>,
    /// Tunnel key, unique among ports; server-chosen when absent.
    #[serde(default)]
    pub tunnel_key: Option<u64>,
    /// VIF id (Neutron).
    #[serde(default)]
    pub vif_id: Option<Uuid>,
    /// Host the port is bound to.
    #[serde(default)]
    pub host_id: Option<Uuid>,
    /// Interface on `host_id` the port is bound to.
    #[serde(default)]
    pub interface_name: Option<String>,
    /// Linked peer port (interior ports).
    #[serde(default)]
    pub peer_id: Option<Uuid>,
    /// Inbound mirrors.
    #[serde(default)]
    pub inbound_mirror_ids: Vec<Uuid>,
    /// Outbound mirrors.
    #[serde(default)]
    pub outbound_mirror_ids: Vec<Uuid>,
    /// Post-inbound-filter mirrors.
    #[serde(default)]
    pub post_in_filter_mirror_ids: Vec<Uuid>,
    /// Pre-outbound-filter mirrors.
    #[serde(default)]
    pub pre_out_filter_mirror_ids: Vec<Uuid>,
    /// L2 insertions.
    #[serde(default)]
    pub insertion_ids: Vec<Uuid>,
    /// QoS policy.
    #[serde(default)]
    pub qos_policy_id: Option<Uuid>,
    /// Out: the port is up on its host (a state key, never stored).
    #[serde(default)]
    pub active: bool,
    /// Router port: the port's IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_address: Option<String>,
    /// Router port: the connected network address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<String>,
    /// Router port: the connected network length (0..32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_length: Option<u32>,
    /// Router port: the 5.3+ multi-address form, CIDR strings with the port address as host part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_subnet: Option<Vec<String>>,
    /// Router port: MAC address; server-chosen (`02:` locally administered) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mac: Option<String>,
    /// Router port: VNI (0..0xFFFFFF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtr_port_vni: Option<u32>,
    /// Router port: off-ramp VXLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_ramp_vxlan: Option<bool>,
    /// Router port: service container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_container_id: Option<Uuid>,
    /// Bridge port: VLAN id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    /// VXLAN port: VTEP id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_id: Option<Uuid>,
}
uuid_resource!(Port, Kind::Port);

/// The binding body of `POST hosts/{id}/ports` (`HostInterfacePort-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostInterfacePort {
    /// The port to bind.
    pub port_id: Uuid,
    /// The host (out: taken from the URI).
    #[serde(default)]
    pub host_id: Option<Uuid>,
    /// The interface on the host.
    pub interface_name: String,
}

/// The body of `POST ports/{id}/link` (`PortLink-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortLink {
    /// The port to link to.
    pub peer_id: Uuid,
    /// The port being linked (out: taken from the URI).
    #[serde(default)]
    pub port_id: Option<Uuid>,
}

/// A route's `type` (proto PORT/BLACKHOLE/REJECT/LOCAL/FIP64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum RouteType {
    /// Forward through `nextHopPort`.
    #[default]
    Normal,
    /// Drop silently.
    BlackHole,
    /// Drop with ICMP unreachable.
    Reject,
    /// Delivered to the router itself (port addresses).
    Local,
    /// FIP64 translation.
    Fip64,
}

/// A route of a router (`Route-v1`, ZOOM `Route`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// The router (out: taken from the URI).
    #[serde(default)]
    pub router_id: Option<Uuid>,
    /// Egress port; required for `Normal` routes, must belong to the router.
    #[serde(default)]
    pub next_hop_port: Option<Uuid>,
    /// Opaque attributes.
    #[serde(default)]
    pub attributes: Option<String>,
    /// Destination network address (required).
    #[serde(default)]
    pub dst_network_addr: Option<String>,
    /// Destination prefix length (required, 0..32).
    #[serde(default)]
    pub dst_network_length: Option<u32>,
    /// Source network address (required, `0.0.0.0` for any).
    #[serde(default)]
    pub src_network_addr: Option<String>,
    /// Source prefix length (required, 0..32).
    #[serde(default)]
    pub src_network_length: Option<u32>,
    /// Gateway IPv4; absent means directly connected.
    #[serde(default)]
    pub next_hop_gateway: Option<String>,
    /// Lowest wins; equal weights are ECMP.
    #[serde(default)]
    pub weight: u32,
    /// Route type.
    #[serde(rename = "type", default)]
    pub route_type: RouteType,
    /// Out: learned by BGP.
    #[serde(default)]
    pub learned: bool,
}
uuid_resource!(Route, Kind::Route);

/// A rule chain (`Chain-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Owning tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Hidden back-reference: the chain's rules in order (ZOOM `Chain.rule_ids`).
    #[serde(default)]
    pub rule_ids: Vec<Uuid>,
}
uuid_resource!(Chain, Kind::Chain);

/// A rule's `type` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    /// Accept.
    Accept,
    /// Drop.
    Drop,
    /// Reject (ICMP).
    Reject,
    /// Return to the calling chain.
    Return,
    /// Jump to `jumpChainId`.
    Jump,
    /// Destination NAT.
    Dnat,
    /// Source NAT.
    Snat,
    /// Reverse destination NAT.
    RevDnat,
    /// Reverse source NAT.
    RevSnat,
    /// L2 transform.
    L2Transform,
    /// Trace.
    Trace,
    /// Continue.
    Continue,
    /// Redirect.
    Redirect,
}

/// A NAT rule's `flowAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowAction {
    /// Accept after translating.
    Accept,
    /// Continue the chain.
    Continue,
    /// Return from the chain.
    Return,
}

/// One NAT target (`natTargets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatTarget {
    /// First address.
    pub address_from: String,
    /// Last address.
    pub address_to: String,
    /// First L4 port.
    #[serde(default)]
    pub port_from: u16,
    /// Last L4 port.
    #[serde(default)]
    pub port_to: u16,
}

/// An inclusive range (`tpSrc`, `tpDst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Range {
    /// First value.
    pub start: u32,
    /// Last value.
    pub end: u32,
}

/// `fragmentPolicy` of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FragmentPolicy {
    /// Any packet.
    Any,
    /// Non-header fragments.
    Nonheader,
    /// Header fragments.
    Header,
    /// Unfragmented packets.
    Unfragmented,
}

/// The match part of a rule (`Condition.java`). All fields optional.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    pub cond_invert: bool,
    pub match_forward_flow: bool,
    pub match_return_flow: bool,
    pub in_ports: Vec<Uuid>,
    pub inv_in_ports: bool,
    pub out_ports: Vec<Uuid>,
    pub inv_out_ports: bool,
    pub port_group: Option<Uuid>,
    pub inv_port_group: bool,
    pub in_port_group: Option<Uuid>,
    pub inv_in_port_group: bool,
    pub out_port_group: Option<Uuid>,
    pub inv_out_port_group: bool,
    pub ip_addr_group_src: Option<Uuid>,
    pub inv_ip_addr_group_src: bool,
    pub ip_addr_group_dst: Option<Uuid>,
    pub inv_ip_addr_group_dst: bool,
    pub traversed_device: Option<Uuid>,
    pub inv_traversed_device: bool,
    pub no_vlan: bool,
    pub vlan: Option<u16>,
    pub dl_type: Option<u16>,
    pub inv_dl_type: bool,
    pub dl_src: Option<String>,
    pub dl_src_mask: Option<String>,
    pub inv_dl_src: bool,
    pub dl_dst: Option<String>,
    pub dl_dst_mask: Option<String>,
    pub inv_dl_dst: bool,
    pub nw_tos: Option<u8>,
    pub inv_nw_tos: bool,
    pub nw_proto: Option<u8>,
    pub inv_nw_proto: bool,
    pub nw_src_address: Option<String>,
    pub nw_src_length: Option<u32>,
    pub inv_nw_src: bool,
    pub nw_dst_address: Option<String>,
    pub nw_dst_length: Option<u32>,
    pub inv_nw_dst: bool,
    pub match_nw_dst_rewritten: bool,
    pub fragment_policy: Option<FragmentPolicy>,
    pub tp_src: Option<Range>,
    pub tp_dst: Option<Range>,
    pub inv_tp_src: bool,
    pub inv_tp_dst: bool,
    pub icmp_data_src_ip_address: Option<String>,
    pub icmp_data_src_ip_length: Option<u32>,
    pub inv_icmp_data_src_ip: bool,
    pub icmp_data_dst_ip_address: Option<String>,
    pub icmp_data_dst_ip_length: Option<u32>,
    pub inv_icmp_data_dst_ip: bool,
}

/// A rule of a chain (`Rule-v2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// The chain (out: taken from the URI).
    #[serde(default)]
    pub chain_id: Option<Uuid>,
    /// Rule type (the polymorphic tag).
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    /// 1-based position; on create inserts there (1..=n+1, default 1); on read the current index + 1.
    #[serde(default)]
    pub position: Option<u32>,
    /// Meter name.
    #[serde(default)]
    pub meter_name: Option<String>,
    /// NAT rules: what to do after translating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<FlowAction>,
    /// dnat/snat: the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_targets: Option<Vec<NatTarget>>,
    /// jump: the target chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_chain_id: Option<Uuid>,
    /// jump: the target chain's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_chain_name: Option<String>,
    /// l2_transform: pop a VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop_vlan: Option<bool>,
    /// l2_transform: push this VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_vlan: Option<u16>,
    /// l2_transform: redirect target port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port_id: Option<Uuid>,
    /// l2_transform: redirect ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// l2_transform: fail open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
    /// The match.
    #[serde(flatten)]
    pub condition: Condition,
}
uuid_resource!(Rule, Kind::Rule);

/// A host's network interface (`Interface-v1`).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    #[serde(default)]
    pub host_id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(rename = "type", default)]
    pub interface_type: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub port_type: Option<String>,
    /// IPv4 or IPv6 addresses.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    #[serde(default)]
    pub status: Option<i32>,
}

/// A host running the agent (`Host-v3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Out: the host's addresses (IPv4 or IPv6).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    /// Out: the host's interfaces, registered by the host itself.
    #[serde(default)]
    pub host_interfaces: Vec<Interface>,
    /// Out: the host is alive (a state key; stored here by the embedded store until state keys exist).
    #[serde(default)]
    pub alive: bool,
    /// Flooding proxy weight.
    #[serde(default)]
    pub flooding_proxy_weight: Option<u32>,
    /// Container weight.
    #[serde(default)]
    pub container_weight: Option<u32>,
    /// Container limit.
    #[serde(default)]
    pub container_limit: Option<u32>,
    /// Enforce the container limit.
    #[serde(default)]
    pub enforce_container_limit: Option<bool>,
}
uuid_resource!(Host, Kind::Host);

/// A tunnel zone's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelZoneType {
    /// GRE tunnels (the default).
    #[default]
    Gre,
    /// VXLAN tunnels.
    Vxlan,
    /// VTEP zone.
    Vtep,
}

/// A member of a tunnel zone (`TunnelZoneHost-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelZoneHost {
    /// The zone (out: taken from the URI).
    #[serde(default)]
    pub tunnel_zone_id: Option<Uuid>,
    /// The member host.
    pub host_id: Uuid,
    /// The host's tunnel endpoint address.
    pub ip_address: String,
}

/// A tunnel zone (`TunnelZone-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelZone {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Name (required).
    #[serde(default)]
    pub name: Option<String>,
    /// Tunnel type.
    #[serde(rename = "type", default)]
    pub zone_type: TunnelZoneType,
    /// Hidden: the members (ZOOM `TunnelZone.hosts`).
    #[serde(default)]
    pub members: Vec<TunnelZoneHost>,
}
uuid_resource!(TunnelZone, Kind::TunnelZone);

/// A port group (`PortGroup-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortGroup {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Owning tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Stateful group (widens flow-state replication).
    #[serde(default)]
    pub stateful: bool,
    /// Hidden: member ports (ZOOM `PortGroup.port_ids`).
    #[serde(default)]
    pub port_ids: Vec<Uuid>,
}
uuid_resource!(PortGroup, Kind::PortGroup);

/// A port group membership (`PortGroupPort-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortGroupPort {
    /// The group (out: taken from the URI).
    #[serde(default)]
    pub port_group_id: Option<Uuid>,
    /// The member port.
    pub port_id: Uuid,
}

/// One address of an IP address group with the ports it was learned on (ZOOM `IPAddrPorts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpAddrPorts {
    /// The address (IPv4 or IPv6).
    #[schema(value_type = String)]
    pub ip_address: IpAddr,
    /// Ports associated with it.
    #[serde(default)]
    pub port_ids: Vec<Uuid>,
}

/// An IP address group (`IpAddrGroup-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpAddrGroup {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Owning tenant. Not in MidoNet's `IpAddrGroup.java`: added here so tenant tokens are scoped to
    /// their groups like routers and chains (clients that never send it see `null`).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Hidden: the addresses.
    #[serde(default)]
    pub ip_addr_ports: Vec<IpAddrPorts>,
    /// Inbound chain.
    #[serde(default)]
    pub inbound_chain_id: Option<Uuid>,
    /// Outbound chain.
    #[serde(default)]
    pub outbound_chain_id: Option<Uuid>,
    /// Rules referring to this group.
    #[serde(default)]
    pub rule_ids: Vec<Uuid>,
}
uuid_resource!(IpAddrGroup, Kind::IpAddrGroup);

/// `4` or `6`, as a number or a string (the Jackson type tag MidoNet clients send either way), or null.
fn ip_version_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([4, 6])))
        .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["4", "6"])))
        .item(ObjectBuilder::new().schema_type(Type::Null));
    Schema::OneOf(one_of.build())
}

/// An address of an IP address group (`IpAddrGroupAddr-v1`); `version` is the type tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpAddrGroupAddr {
    /// The address.
    pub addr: String,
    /// The group (out: taken from the URI).
    #[serde(default)]
    pub ip_addr_group_id: Option<Uuid>,
    /// 4 or 6 (sent as a number or a string).
    #[serde(default)]
    #[schema(schema_with = ip_version_schema)]
    pub version: Option<serde_json::Value>,
}

/// A BGP peer of a router (`BgpPeer-v1`). The local AS is the router's `asNumber`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Hidden: the router (taken from the URI).
    #[serde(default)]
    pub router_id: Option<Uuid>,
    /// Peer AS (required).
    #[serde(default)]
    pub as_number: Option<u32>,
    /// Peer address (required).
    #[serde(default)]
    pub address: Option<String>,
    /// Keepalive seconds (`None`: default).
    #[serde(default)]
    pub keep_alive: Option<u32>,
    /// Hold time seconds (`None`: default).
    #[serde(default)]
    pub hold_time: Option<u32>,
    /// Connect retry seconds (`None`: default).
    #[serde(default)]
    pub connect_retry: Option<u32>,
    /// TCP MD5 password.
    #[serde(default)]
    pub password: Option<String>,
}
uuid_resource!(BgpPeer, Kind::BgpPeer);

/// A network a router announces over BGP (`BgpNetwork-v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpNetwork {
    /// Server-chosen (UUID v4) when absent.
    #[serde(default)]
    pub id: Uuid,
    /// Hidden: the router (taken from the URI).
    #[serde(default)]
    pub router_id: Option<Uuid>,
    /// Network address (required).
    #[serde(default)]
    pub subnet_address: Option<String>,
    /// Prefix length (required).
    #[serde(default)]
    pub subnet_length: Option<u32>,
}
uuid_resource!(BgpNetwork, Kind::BgpNetwork);

/// A tenant (`Tenant-v2`). The id is a Keystone project id: free text, not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// Tenant id (required).
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enabled (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
}

impl Resource for Tenant {
    const KIND: Kind = Kind::Tenant;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// The system state (`SystemState-v2`), a singleton.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemState {
    /// `ACTIVE` or `UPGRADE`.
    #[serde(default = "SystemState::default_state")]
    pub state: String,
    /// `READWRITE` or `READONLY`.
    #[serde(default = "SystemState::default_availability")]
    pub availability: String,
    /// Out: the API version.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub information: Option<String>,
}

impl SystemState {
    /// The store id of the singleton.
    pub const KEY: &'static str = "system_state";

    fn default_state() -> String {
        "ACTIVE".into()
    }
    fn default_availability() -> String {
        "READWRITE".into()
    }
}

impl Default for SystemState {
    fn default() -> Self {
        SystemState {
            state: Self::default_state(),
            availability: Self::default_availability(),
            version: Some("v5.0".into()),
            information: None,
        }
    }
}

impl Resource for SystemState {
    const KIND: Kind = Kind::SystemState;
    fn key(&self) -> String {
        Self::KEY.into()
    }
}

#[cfg(test)]
mod tests;
