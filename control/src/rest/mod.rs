//! The MidoNet v5 REST API on axum: `/midonet-api` with MidoNet's paths, vendor media types, JSON
//! names, status codes, headers and `Error-v1` bodies (`../shared/reference/midonet-rest-api.md`).
//!
//! One module per resource exposes `routes()`, mostly `crud`'s generic handlers over the type's
//! `Crud` impl; [`app`] merges them, puts the `X-Auth-Token` check in front of everything but
//! `POST /login`, and is what the appliance serves (and the tests call in-process). Tenant scoping is
//! in `crud`. Topology calls are synchronous store transactions, so they run on tokio's blocking
//! pool.
//!
//! Resources: routers, bridges, ports (+ link, port groups), routes, chains, rules, hosts (+
//! interfaces, port bindings), tunnel zones (+ members), port groups (+ ports), IP address groups
//! (+ addresses, both path forms), BGP peers and networks (router-scoped collections, top-level
//! items), tenants (read only) and system state. [`served_paths`] lists every path; a test holds
//! the OpenAPI document (`openapi`: hand-written paths, generated body schemas) to it, method by
//! method.
//!
//! Choices: `POST` answers 201 with `Location` *and* the created object (MidoNet sends no body;
//! clients GET `Location` either way). Ids in paths that are not UUIDs are 404s. A tenant token
//! gets 404 for another tenant's objects and 403 for claiming another tenant's `tenantId` or for
//! admin-only writes (hosts, bindings, tunnel zones, system state); see `crud`.

mod auth;
mod bridges;
mod chains;
mod crud;
mod error;
mod hosts;
mod ip_addr_groups;
mod media;
mod openapi;
mod port_groups;
mod ports;
mod root;
mod routers;
mod system_state;
mod tenants;
mod tunnel_zones;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use auth::{Account, AuthError, AuthProvider, LocalAuth, MockAuth, Role, Session, Token, DEFAULT_TOKEN_TTL};
pub use error::ApiError;

use self::openapi::{Bodies, Served};
use crate::store::Store;
use crate::topology::{Topology, TopologyError};

/// The root URI path of the API.
pub const PREFIX: &str = "/midonet-api";

/// The store type the REST API works on: any store, shared.
pub type DynStore = Arc<dyn Store>;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    topology: Arc<Topology<DynStore>>,
    auth: Arc<dyn AuthProvider>,
}

impl AppState {
    /// Run a topology operation on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Topology<DynStore>) -> Result<R, TopologyError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let topology = self.topology.clone();
        blocking(move || f(&topology).map_err(ApiError::from)).await
    }
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R, ApiError> + Send + 'static) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

/// The whole API as an axum router: serve it with `axum::serve(listener, app(..))` on port 8181.
pub fn app(topology: Arc<Topology<DynStore>>, auth: Arc<dyn AuthProvider>) -> axum::Router {
    let state = AppState { topology, auth };
    let protected =
        protected_routes().router.route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    axum::Router::new()
        .merge(auth::router())
        .merge(openapi::router())
        .merge(protected)
        .fallback(not_found)
        // After every route: it applies to the method routers registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every path behind the token check, with its handlers.
fn protected_routes() -> Routes {
    Routes::new()
        .merge(root::routes())
        .merge(routers::routes())
        .merge(bridges::routes())
        .merge(ports::routes())
        .merge(chains::routes())
        .merge(hosts::routes())
        .merge(tunnel_zones::routes())
        .merge(port_groups::routes())
        .merge(ip_addr_groups::routes())
        .merge(tenants::routes())
        .merge(system_state::routes())
}

/// Every path [`app`] serves, relative to [`PREFIX`] (`/routers/{id}`), in axum's syntax, which is
/// also OpenAPI's.
pub fn served_paths() -> Vec<String> {
    let mut paths = vec!["/login".to_string(), "/openapi.json".to_string()];
    paths.extend(protected_routes().bodies.into_iter().map(|(path, _)| path));
    paths
}

/// An axum router that remembers its paths and what each takes and answers (for
/// [`served_paths`] and the OpenAPI document); paths are relative to [`PREFIX`].
pub(crate) struct Routes {
    router: axum::Router<AppState>,
    bodies: Vec<(String, Bodies)>,
}

impl Routes {
    fn new() -> Routes {
        Routes { router: axum::Router::new(), bodies: Vec::new() }
    }

    fn route(mut self, path: &str, served: Served) -> Routes {
        self.router = self.router.route(&format!("{PREFIX}{path}"), served.handlers);
        self.bodies.push((path.to_string(), served.bodies));
        self
    }

    fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.bodies.extend(other.bodies);
        self
    }
}

/// [`app`] over a store of any kind, for callers that do not share the [`Topology`].
pub fn app_with_store(store: impl Store + 'static, auth: Arc<dyn AuthProvider>) -> axum::Router {
    app(Arc::new(Topology::new(Arc::new(store) as DynStore)), auth)
}

async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(format!("no resource at {}", uri.path())).into_response()
}

/// axum's own 405 has no body; MidoNet answers every error with `Error-v1` (axum keeps `Allow`).
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::MethodNotAllowed(format!("{method} {}", uri.path())).into_response()
}

/// The absolute base URI (`http://<Host>/midonet-api`) links and `Location` headers are built on.
#[derive(Debug, Clone)]
pub struct Base(pub String);

impl Base {
    /// `<base>/<segment>`.
    fn at(&self, segment: &str) -> String {
        format!("{}/{segment}", self.0)
    }
    /// `<base>/<segment>/<id>`.
    fn item(&self, segment: &str, id: impl std::fmt::Display) -> String {
        format!("{}/{segment}/{id}", self.0)
    }
    /// `<base>/<segment>/<id>` or `None`.
    fn opt(&self, segment: &str, id: Option<Uuid>) -> Option<String> {
        id.map(|id| self.item(segment, id))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost:8181");
        Ok(Base(format!("http://{host}{PREFIX}")))
    }
}

/// axum's `Path`, its rejections answered as `Error-v1`: a segment that does not even decode (`%ff`
/// is not UTF-8) names nothing, like an id that is not a UUID (404), where axum answered a
/// plain-text 400.
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::NotFound(format!("no resource at {}: {}", parts.uri.path(), e.body_text())))
            }
            Err(e) => Err(ApiError::Internal(e.body_text())),
        }
    }
}

/// `s` as one path segment of a URI: everything but RFC 3986's unreserved characters
/// percent-encoded (axum's `Path` decodes it back).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A path id: anything that is not a UUID names nothing (404).
fn parse_id(kind: &str, id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(format!("{kind} {id} not found")))
}
