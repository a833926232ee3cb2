//! Bridges (`Bridge-v4`): `/bridges`, `/bridges/{id}` (their ports are in `ports`).

use uuid::Uuid;

use super::crud::{self, Crud, Ref, Scope, Topo};
use super::media::{BRIDGE, BRIDGES};
use super::{Base, Routes};
use crate::model::Bridge;
use crate::topology::TopologyError;

/// Bridge paths.
pub fn routes() -> Routes {
    Routes::new().route("/bridges", crud::collection::<Bridge>()).route("/bridges/{id}", crud::item_put::<Bridge>())
}

impl Crud for Bridge {
    const NAME: &'static str = "Bridge";
    const SEGMENT: &'static str = "bridges";
    const MEDIA: &'static [&'static str] = BRIDGE;
    const LIST_MEDIA: &'static [&'static str] = BRIDGES;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn references(&self) -> Vec<(&'static str, Ref)> {
        let chains = [("inboundFilterId", self.inbound_filter_id), ("outboundFilterId", self.outbound_filter_id)];
        chains.into_iter().filter_map(|(f, c)| c.map(|c| (f, Ref::Chain(c)))).collect()
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        let me = base.item("bridges", self.id);
        vec![
            ("inboundFilter", base.opt("chains", self.inbound_filter_id)),
            ("outboundFilter", base.opt("chains", self.outbound_filter_id)),
            ("ports", Some(format!("{me}/ports"))),
            ("peerPorts", Some(format!("{me}/peer_ports"))),
            ("vxLanPorts", Some(format!("{me}/vxlan_ports"))),
            ("macTable", Some(format!("{me}/mac_table"))),
            ("arpTable", Some(format!("{me}/arp_table"))),
            ("dhcpSubnets", Some(format!("{me}/dhcp"))),
            ("dhcpSubnet6s", Some(format!("{me}/dhcpV6"))),
            ("vlanMacTableTemplate", Some(format!("{me}/vlans/{{vlanId}}/mac_table"))),
            ("macPortTemplate", Some(format!("{me}/mac_table/{{macAddress}}_{{portId}}"))),
            ("vlanMacPortTemplate", Some(format!("{me}/vlans/{{vlanId}}/mac_table/{{macAddress}}_{{portId}}"))),
        ]
    }
    fn scope(&self, _t: &Topo) -> Result<Scope, TopologyError> {
        Ok(Scope::Tenant(self.tenant_id.clone()))
    }
    fn tenant_field(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.tenant_id)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> Result<Vec<Self>, TopologyError> {
        t.list()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> Result<Self, TopologyError> {
        t.create_bridge(v)
    }
    fn update(t: &Topo, v: Self) -> Result<Self, TopologyError> {
        t.update_bridge(v)
    }
    fn delete(t: &Topo, id: Uuid) -> Result<(), TopologyError> {
        t.delete_bridge(id)
    }
}
