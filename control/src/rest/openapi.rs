//! The OpenAPI 3.0 document, hand-maintained in `openapi.json`, served at `/midonet-api/openapi.json`
//! without authentication.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{AppState, PREFIX};

/// The document's text.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /midonet-api/openapi.json`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        &format!("{PREFIX}/openapi.json"),
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response() }),
    )
}
