//! Hosts (`Host-v3`), read only for now: `/hosts`, `/hosts/{id}`. Hosts register themselves.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::media::{self, HOST, HOSTS};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::Host;

/// Host paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(&format!("{PREFIX}/hosts"), get(list)).route(&format!("{PREFIX}/hosts/{{id}}"), get(read))
}

fn dto(base: &Base, h: &Host) -> Value {
    let me = base.item("hosts", h.id);
    media::dto(
        h,
        me.clone(),
        &[],
        vec![("interfaces", Some(format!("{me}/interfaces"))), ("ports", Some(format!("{me}/ports")))],
    )
}

async fn list(State(st): State<AppState>, base: Base, headers: HeaderMap) -> Result<Response, ApiError> {
    let hosts = st.run(|t| t.list::<Host>()).await?;
    Ok(media::ok(media::negotiate(&headers, HOSTS), Value::Array(hosts.iter().map(|h| dto(&base, h)).collect())))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Host", &id)?;
    let h = st.run(move |t| t.get::<Host>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, HOST), dto(&base, &h)))
}
