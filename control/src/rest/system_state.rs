//! System state (`SystemState-v2`): `GET`/`PUT /system_state` (PUT admin-only). `READONLY`
//! availability makes the topology service refuse every other write (503).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;

use super::auth::{admin_only, Session};
use super::media::{self, SYSTEM_STATE};
use super::openapi::Bodies;
use super::{ApiError, AppState, Base, Routes};
use crate::model::SystemState;

/// System-state path.
pub fn routes() -> Routes {
    Routes::new().route("/system_state", Bodies::item::<SystemState>(SYSTEM_STATE).serve(get(read).put(update)))
}

async fn read(State(st): State<AppState>, base: Base, headers: HeaderMap) -> Result<Response, ApiError> {
    let s = st.run(|t| t.system_state()).await?;
    Ok(media::ok(media::negotiate(&headers, SYSTEM_STATE), media::dto(&s, base.at("system_state"), &[], vec![])))
}

async fn update(
    State(st): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&session)?;
    let s: SystemState = media::body(&headers, &bytes, SYSTEM_STATE)?;
    st.run(move |t| t.set_system_state(s)).await?;
    Ok(media::no_content())
}
