//! Chains (`Chain-v1`) and rules (`Rule-v2`): `/chains`, `/chains/{id}`, `/chains/{id}/rules`,
//! `/rules/{id}`. Chains have no PUT, rules neither (as in MidoNet). Rules belong to their chain's
//! tenant.

use uuid::Uuid;

use super::crud::{self, find, Crud, Ref, Scope, Topo};
use super::media::{CHAIN, CHAINS, RULE, RULES};
use super::{Base, Routes};
use crate::model::{Chain, Rule};
use crate::topology::TopologyError;

type TResult<T> = Result<T, TopologyError>;

/// Chain and rule paths.
pub fn routes() -> Routes {
    Routes::new()
        .route("/chains", crud::collection::<Chain>())
        .route("/chains/{id}", crud::item::<Chain>())
        .route("/chains/{id}/rules", crud::children::<Rule>())
        .route("/rules/{id}", crud::item::<Rule>())
}

impl Crud for Chain {
    const NAME: &'static str = "Chain";
    const SEGMENT: &'static str = "chains";
    const MEDIA: &'static [&'static str] = CHAIN;
    const LIST_MEDIA: &'static [&'static str] = CHAINS;
    const HIDDEN: &'static [&'static str] = &["ruleIds"];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("rules", Some(format!("{}/rules", base.item("chains", self.id))))]
    }
    fn scope(&self, _t: &Topo) -> TResult<Scope> {
        Ok(Scope::Tenant(self.tenant_id.clone()))
    }
    fn tenant_field(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.tenant_id)
    }
    fn list(t: &Topo, _parent: Option<Uuid>) -> TResult<Vec<Self>> {
        t.list()
    }
    fn create(t: &Topo, _parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_chain(v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_chain(id)
    }
}

impl Crud for Rule {
    const NAME: &'static str = "Rule";
    const SEGMENT: &'static str = "rules";
    const MEDIA: &'static [&'static str] = RULE;
    const LIST_MEDIA: &'static [&'static str] = RULES;

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn references(&self) -> Vec<(&'static str, Ref)> {
        let c = &self.condition;
        let mut refs: Vec<(&'static str, Ref)> = Vec::new();
        refs.extend(self.jump_chain_id.map(|id| ("jumpChainId", Ref::Chain(id))));
        refs.extend(c.in_ports.iter().map(|&p| ("inPorts", Ref::Port(p))));
        refs.extend(c.out_ports.iter().map(|&p| ("outPorts", Ref::Port(p))));
        refs.extend(self.target_port_id.map(|p| ("targetPortId", Ref::Port(p))));
        for (field, g) in
            [("portGroup", c.port_group), ("inPortGroup", c.in_port_group), ("outPortGroup", c.out_port_group)]
        {
            refs.extend(g.map(|g| (field, Ref::PortGroup(g))));
        }
        for (field, g) in [("ipAddrGroupSrc", c.ip_addr_group_src), ("ipAddrGroupDst", c.ip_addr_group_dst)] {
            refs.extend(g.map(|g| (field, Ref::IpAddrGroup(g))));
        }
        refs.extend(c.traversed_device.map(|d| ("traversedDevice", Ref::Device(d))));
        refs
    }
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)> {
        vec![("chain", base.opt("chains", self.chain_id))]
    }
    fn scope(&self, t: &Topo) -> TResult<Scope> {
        Ok(Scope::Tenant(match self.chain_id {
            Some(c) => find::<Chain>(t, c)?.and_then(|c| c.tenant_id),
            None => None,
        }))
    }
    fn parent_scope(t: &Topo, parent: Uuid) -> TResult<Scope> {
        let c: Chain = t.get(&parent.to_string())?;
        Ok(Scope::Tenant(c.tenant_id))
    }
    fn read(t: &Topo, id: Uuid) -> TResult<Self> {
        t.get_rule(id)
    }
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>> {
        match parent {
            Some(chain) => t.chain_rules(chain),
            None => t.list(),
        }
    }
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self> {
        t.create_rule(parent.unwrap_or_default(), v)
    }
    fn delete(t: &Topo, id: Uuid) -> TResult<()> {
        t.delete_rule(id)
    }
}
