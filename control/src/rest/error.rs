//! REST errors: one enum, mapped once to a status and a MidoNet `Error-v1` body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use super::media::ERROR;
use crate::store::StoreError;
use crate::topology::TopologyError;

/// Why a REST request failed. Internal details are logged, never returned.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The topology service refused or failed (status from [`TopologyError::status`]).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// No, unknown or expired token, or bad login credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller's role may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request body's `Content-Type` is not one this resource accepts (415).
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// The body is not valid JSON for the resource (400).
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// No such resource or path (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists, but not with this method (405): `<METHOD> <path>`.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// Something failed inside the server (500); the detail is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Topology(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The `Error-v1` body every error answers with (`ErrorEntity.java`; 400s list their reason as
/// a violation, as `ValidationErrorEntity.java` does).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    message: String,
    /// The HTTP status.
    code: u16,
    /// The reasons a request was invalid (400 only; empty otherwise).
    violations: Vec<Violation>,
}

/// One reason a request was invalid.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Violation {
    /// The reason.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "REST request failed");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => "service unavailable".to_string(),
                _ => "internal server error".to_string(),
            }
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "REST request refused");
            self.to_string()
        };
        // READONLY, and a store that cannot be reached (ZooKeeper down), are 503s the operator must
        // see as such: the write was not applied and can be retried.
        let message = match &self {
            ApiError::Topology(TopologyError::ReadOnly) => self.to_string(),
            ApiError::Topology(TopologyError::Store(StoreError::Backend(detail))) => {
                format!("the topology store is unavailable, the change was not applied or not confirmed: {detail}")
            }
            _ => message,
        };
        let violations =
            if status == StatusCode::BAD_REQUEST { vec![Violation { message: message.clone() }] } else { Vec::new() };
        let body = ErrorBody { message, code: status.as_u16(), violations };
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ERROR));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"midonet\""));
        }
        resp
    }
}
