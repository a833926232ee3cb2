//! One CRUD shape for every resource: a [`Crud`] impl names the media types, path segment, links,
//! tenant scope and topology calls of a type, and the generic handlers here do the rest (content
//! negotiation, `Location`, 204s, tenant scoping, `?tenant_id=` filtering, Error-v1 bodies).
//!
//! Tenant scoping: an admin token sees everything. A tenant token sees the objects whose tenant (the
//! object's own `tenantId`, or for ports, routes, rules and BGP objects their parent's) is its
//! tenant, plus shared infrastructure (hosts, tunnel zones), which only admins change. Another
//! tenant's object answers **404** as if it did not exist (MidoNet's v5 reference names no status for
//! this; 404 does not tell a tenant which ids exist); creating or re-owning an object for another
//! tenant answers **403**, and a tenant token's object without a `tenantId` gets the token's.
//! A tenant's body may name (as filter, jump target, peer, rule condition...) only objects the
//! tenant sees: another's answers **404** like a missing one ([`Crud::references`]); fields only an
//! admin may set, such as a port's host binding, answer **403** ([`Crud::admin_fields`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Extension;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Role, Session};
use super::media;
use super::openapi::{Bodies, Served};
use super::{parse_id, ApiError, AppState, Base, DynStore, Path};
use crate::model::{Bridge, Chain, IpAddrGroup, Port, PortGroup, Resource, Router};
use crate::store::Kind;
use crate::topology::{Topology, TopologyError};

/// The topology the REST layer works on.
pub type Topo = Topology<DynStore>;

type TResult<T> = Result<T, TopologyError>;

/// Who an object belongs to, for tenant scoping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Owned by this tenant (`None`: by nobody, so visible to admins only).
    Tenant(Option<String>),
    /// Shared infrastructure every token reads and only admins change.
    Shared,
}

impl Scope {
    fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(t) => t.as_deref(),
            Scope::Shared => None,
        }
    }
}

/// What a session may do with an object of `scope`: `Ok` or the error to answer.
pub fn check_read(session: &Session, scope: &Scope, what: impl FnOnce() -> String) -> Result<(), ApiError> {
    match (session.role, scope) {
        (Role::Admin, _) | (_, Scope::Shared) => Ok(()),
        (Role::Tenant, Scope::Tenant(t)) if t.as_deref() == Some(session.tenant_id.as_str()) => Ok(()),
        _ => Err(ApiError::NotFound(format!("{} not found", what()))),
    }
}

/// As [`check_read`], and shared objects need the admin role.
pub fn check_write(session: &Session, scope: &Scope, what: impl FnOnce() -> String) -> Result<(), ApiError> {
    check_read(session, scope, what)?;
    match (session.role, scope) {
        (Role::Tenant, Scope::Shared) => Err(ApiError::Forbidden("admin role required")),
        _ => Ok(()),
    }
}

/// Fill or check the `tenantId` of an object a tenant token creates or replaces.
pub fn claim(session: &Session, tenant: &mut Option<String>) -> Result<(), ApiError> {
    if session.role == Role::Admin {
        return Ok(());
    }
    match tenant {
        Some(t) if *t != session.tenant_id => Err(ApiError::Forbidden("tenantId must be the token's tenant")),
        _ => {
            *tenant = Some(session.tenant_id.clone());
            Ok(())
        }
    }
}

/// An object, or `None` when it does not exist.
pub fn find<T: Resource>(t: &Topo, id: Uuid) -> TResult<Option<T>> {
    match t.get::<T>(&id.to_string()) {
        Ok(v) => Ok(Some(v)),
        Err(TopologyError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The scope of a router or bridge (ports inherit it); a missing device is nobody's.
pub fn device_scope(t: &Topo, device: Option<Uuid>) -> TResult<Scope> {
    let Some(id) = device else { return Ok(Scope::Tenant(None)) };
    if let Some(r) = find::<Router>(t, id)? {
        return Ok(Scope::Tenant(r.tenant_id));
    }
    Ok(Scope::Tenant(find::<Bridge>(t, id)?.and_then(|b| b.tenant_id)))
}

/// An object a body field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    /// A chain.
    Chain(Uuid),
    /// A port.
    Port(Uuid),
    /// A port group.
    PortGroup(Uuid),
    /// An IP address group.
    IpAddrGroup(Uuid),
    /// A router or a bridge.
    Device(Uuid),
}

/// The scope of a referenced object, `None` when it does not exist (the topology service answers
/// that itself).
fn ref_scope(t: &Topo, r: Ref) -> TResult<Option<Scope>> {
    let tenant = |t: Option<String>| Some(Scope::Tenant(t));
    Ok(match r {
        Ref::Chain(id) => find::<Chain>(t, id)?.and_then(|c| tenant(c.tenant_id)),
        Ref::PortGroup(id) => find::<PortGroup>(t, id)?.and_then(|g| tenant(g.tenant_id)),
        Ref::IpAddrGroup(id) => find::<IpAddrGroup>(t, id)?.and_then(|g| tenant(g.tenant_id)),
        Ref::Port(id) => find::<Port>(t, id)?.map(|p| device_scope(t, p.device_id)).transpose()?,
        Ref::Device(id) => match (find::<Router>(t, id)?, find::<Bridge>(t, id)?) {
            (Some(r), _) => tenant(r.tenant_id),
            (None, Some(b)) => tenant(b.tenant_id),
            (None, None) => None,
        },
    })
}

/// A tenant session's checks of a body (`old`: the stored object on PUT): references to objects
/// it cannot see are answered as missing (404), admin-only fields 403. A reference the stored
/// object already had is not the tenant's doing and passes (an admin may have linked its port).
pub fn tenant_checks<T: Crud>(t: &Topo, session: &Session, v: &T, old: Option<&T>) -> TResult<Result<(), ApiError>> {
    if session.role == Role::Admin {
        return Ok(Ok(()));
    }
    if let Err(e) = v.admin_fields(old) {
        return Ok(Err(e));
    }
    let kept = old.map(|o| o.references()).unwrap_or_default();
    for (field, r) in v.references() {
        if kept.contains(&(field, r)) {
            continue;
        }
        let Some(scope) = ref_scope(t, r)? else { continue };
        if check_read(session, &scope, String::new).is_err() {
            let (kind, id) = match r {
                Ref::Chain(id) => (Kind::Chain, id),
                Ref::Port(id) => (Kind::Port, id),
                Ref::PortGroup(id) => (Kind::PortGroup, id),
                Ref::IpAddrGroup(id) => (Kind::IpAddrGroup, id),
                Ref::Device(id) => (Kind::Router, id),
            };
            return Ok(Err(TopologyError::ReferenceNotFound { field, kind, id }.into()));
        }
    }
    Ok(Ok(()))
}

/// A REST resource type: everything the generic handlers need to know about it (its schema is
/// the OpenAPI document's).
pub trait Crud: Resource + ToSchema + Send + Sync + 'static {
    /// Name in error messages (`Router`).
    const NAME: &'static str;
    /// Path segment of the item URI (`routers` in `/routers/{id}`).
    const SEGMENT: &'static str;
    /// Item media types, preferred first.
    const MEDIA: &'static [&'static str];
    /// Collection media types, preferred first.
    const LIST_MEDIA: &'static [&'static str];
    /// Stored fields MidoNet does not show.
    const HIDDEN: &'static [&'static str] = &[];

    /// The object's id.
    fn id(&self) -> Uuid;
    /// Set the id (from the request path on PUT).
    fn set_id(&mut self, id: Uuid);
    /// Link fields (`uri` is added by the handlers).
    fn links(&self, base: &Base) -> Vec<(&'static str, Option<String>)>;
    /// Who owns the object.
    fn scope(&self, t: &Topo) -> TResult<Scope>;
    /// Who owns the objects created under `parent` (the parent's scope; top-level types: the new
    /// object's own).
    fn parent_scope(_t: &Topo, _parent: Uuid) -> TResult<Scope> {
        Ok(Scope::Shared)
    }
    /// The type's own `tenantId`, for tenant-owned top-level types.
    fn tenant_field(&mut self) -> Option<&mut Option<String>> {
        None
    }

    /// The objects the body names, each with its JSON field.
    fn references(&self) -> Vec<(&'static str, Ref)> {
        Vec::new()
    }
    /// Refuses (403) what only an admin may set (`old`: the stored object on PUT).
    fn admin_fields(&self, _old: Option<&Self>) -> Result<(), ApiError> {
        Ok(())
    }

    /// Read one.
    fn read(t: &Topo, id: Uuid) -> TResult<Self> {
        t.get(&id.to_string())
    }
    /// Every object (top level) or every object under `parent`.
    fn list(t: &Topo, parent: Option<Uuid>) -> TResult<Vec<Self>>;
    /// Create (under `parent` for child types).
    fn create(t: &Topo, parent: Option<Uuid>, v: Self) -> TResult<Self>;
    /// Replace (only routed for types with PUT).
    fn update(_t: &Topo, v: Self) -> TResult<Self> {
        Ok(v)
    }
    /// Delete.
    fn delete(t: &Topo, id: Uuid) -> TResult<()>;
}

/// The JSON of an object: its fields, `uri`, links, hidden fields removed.
pub fn dto<T: Crud>(base: &Base, v: &T) -> Value {
    media::dto(v, base.item(T::SEGMENT, v.id()), T::HIDDEN, v.links(base))
}

/// What a collection of `T` takes and answers, for the OpenAPI document.
pub fn list_bodies<T: Crud>() -> Bodies {
    Bodies::collection::<T>(T::MEDIA, T::LIST_MEDIA).hiding(T::HIDDEN)
}

/// What an item of `T` takes and answers, for the OpenAPI document.
pub fn item_bodies<T: Crud>() -> Bodies {
    Bodies::item::<T>(T::MEDIA).hiding(T::HIDDEN)
}

/// `GET` (list, `?tenant_id=` filtered) and `POST` on a top-level collection.
pub fn collection<T: Crud>() -> Served {
    list_bodies::<T>().serve(get(list::<T>).post(create::<T>))
}

/// `GET` (list, `?tenant_id=` filtered) on a top-level collection without `POST`.
pub fn collection_get<T: Crud>() -> Served {
    list_bodies::<T>().serve(get(list::<T>))
}

/// `GET` and `POST` on a collection under a parent (`/routers/{id}/routes`).
pub fn children<T: Crud>() -> Served {
    list_bodies::<T>().serve(get(list_children::<T>).post(create_child::<T>))
}

/// `GET` and `DELETE` on an item.
pub fn item<T: Crud>() -> Served {
    item_bodies::<T>().serve(item_handlers::<T>())
}

/// `GET`, `PUT` and `DELETE` on an item.
pub fn item_put<T: Crud>() -> Served {
    item_bodies::<T>().serve(item_handlers::<T>().put(update::<T>))
}

fn item_handlers<T: Crud>() -> MethodRouter<AppState> {
    get(read::<T>).delete(remove::<T>)
}

/// Only the objects `session` may see, filtered by `?tenant_id=` when asked.
fn visible<T: Crud>(t: &Topo, session: &Session, all: Vec<T>, tenant: Option<&str>) -> TResult<Vec<T>> {
    let mut out = Vec::with_capacity(all.len());
    for v in all {
        let scope = v.scope(t)?;
        let mine = check_read(session, &scope, String::new).is_ok();
        let asked = match (&scope, tenant) {
            (Scope::Tenant(_), Some(q)) => scope.tenant() == Some(q),
            _ => true,
        };
        if mine && asked {
            out.push(v);
        }
    }
    Ok(out)
}

async fn list<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = q.get("tenant_id").cloned();
    let items = st.run(move |t| visible(t, &session, T::list(t, None)?, tenant.as_deref())).await?;
    let items = items.iter().map(|v| dto(&base, v)).collect();
    Ok(media::ok(media::negotiate(&headers, T::LIST_MEDIA), Value::Array(items)))
}

async fn list_children<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(parent): Path<String>,
) -> Result<Response, ApiError> {
    let parent = parse_id("parent", &parent)?;
    let items = st
        .run(move |t| {
            let items = T::list(t, Some(parent))?;
            Ok((T::parent_scope(t, parent)?, visible(t, &session, items, None)?, session))
        })
        .await?;
    let (scope, items, session) = items;
    check_read(&session, &scope, || format!("{parent}"))?;
    let items = items.iter().map(|v| dto(&base, v)).collect();
    Ok(media::ok(media::negotiate(&headers, T::LIST_MEDIA), Value::Array(items)))
}

async fn read<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(T::NAME, &id)?;
    let (v, scope) = st
        .run(move |t| {
            let v = T::read(t, id)?;
            let scope = v.scope(t)?;
            Ok((v, scope))
        })
        .await?;
    check_read(&session, &scope, || format!("{} {id}", T::NAME))?;
    Ok(media::ok(media::negotiate(&headers, T::MEDIA), dto(&base, &v)))
}

async fn create<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let mut v: T = media::body(&headers, &bytes, T::MEDIA)?;
    match v.tenant_field() {
        Some(tenant) => claim(&session, tenant)?,
        None => check_write(&session, &Scope::Shared, String::new)?,
    }
    let v = st
        .run(move |t| {
            if let Err(e) = tenant_checks(t, &session, &v, None)? {
                return Ok(Err(e));
            }
            T::create(t, None, v).map(Ok)
        })
        .await??;
    let uri = base.item(T::SEGMENT, v.id());
    Ok(media::created(&uri, media::negotiate(&headers, T::MEDIA), dto(&base, &v)))
}

async fn create_child<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    base: Base,
    headers: HeaderMap,
    Path(parent): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let parent = parse_id("parent", &parent)?;
    let v: T = media::body(&headers, &bytes, T::MEDIA)?;
    let v = st
        .run(move |t| {
            let scope = T::parent_scope(t, parent)?;
            // The check runs inside the closure so a refused request never reaches the store.
            if let Err(e) = check_write(&session, &scope, || format!("{parent}")) {
                return Ok(Err(e));
            }
            if let Err(e) = tenant_checks(t, &session, &v, None)? {
                return Ok(Err(e));
            }
            T::create(t, Some(parent), v).map(Ok)
        })
        .await??;
    let uri = base.item(T::SEGMENT, v.id());
    Ok(media::created(&uri, media::negotiate(&headers, T::MEDIA), dto(&base, &v)))
}

/// Load `id` and check that `session` may change it.
async fn writable<T: Crud>(st: &AppState, session: &Session, id: Uuid) -> Result<T, ApiError> {
    let (v, scope) = st
        .run(move |t| {
            let v = T::read(t, id)?;
            let scope = v.scope(t)?;
            Ok((v, scope))
        })
        .await?;
    check_write(session, &scope, || format!("{} {id}", T::NAME))?;
    Ok(v)
}

async fn update<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(T::NAME, &id)?;
    let mut v: T = media::body(&headers, &bytes, T::MEDIA)?;
    let old = writable::<T>(&st, &session, id).await?;
    v.set_id(id);
    if let Some(tenant) = v.tenant_field() {
        claim(&session, tenant)?;
    }
    st.run(move |t| {
        if let Err(e) = tenant_checks(t, &session, &v, Some(&old))? {
            return Ok(Err(e));
        }
        T::update(t, v).map(Ok)
    })
    .await??;
    Ok(media::no_content())
}

async fn remove<T: Crud>(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(T::NAME, &id)?;
    writable::<T>(&st, &session, id).await?;
    st.run(move |t| T::delete(t, id)).await?;
    Ok(media::no_content())
}
