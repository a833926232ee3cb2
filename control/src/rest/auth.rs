//! Authentication: the provider trait, the `local` provider (argon2-hashed accounts, expiring
//! random tokens), `POST /login` and the `X-Auth-Token` check every other call goes through.
//!
//! The session (a request extension) carries the role and tenant; `super::crud` scopes every
//! resource by it (404 for another tenant's objects, 403 for claiming another tenant or for
//! admin-only writes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::media::{self, TOKEN};
use super::{blocking, AppState, PREFIX};

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees and changes everything.
    Admin,
    /// Sees and changes its tenant's resources only.
    Tenant,
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Account name.
    pub user: String,
    /// Tenant (project) the token is scoped to.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
}

/// A token issued by [`AuthProvider::login`].
#[derive(Debug, Clone)]
pub struct Token {
    /// The opaque key clients send as `X-Auth-Token`.
    pub key: String,
    /// When it stops being accepted.
    pub expires: SystemTime,
}

/// The body of a login's answer (`Token-v1`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Token)]
pub(crate) struct TokenBody {
    /// The token to send as `X-Auth-Token` (also set as the `sessionId` cookie).
    key: String,
    /// When it stops being accepted (an HTTP date).
    expires: String,
}

/// Why authentication failed (all 401 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password.
    #[error("invalid credentials")]
    BadCredentials,
    /// The token was never issued or was revoked.
    #[error("invalid token")]
    UnknownToken,
    /// The token is past its expiry.
    #[error("token expired")]
    Expired,
    /// No random source.
    #[error("no randomness for a token")]
    Random,
}

/// Checks credentials, issues tokens and resolves them to sessions.
pub trait AuthProvider: Send + Sync {
    /// Log `user` in (optionally scoped to `project`), returning a fresh token.
    fn login(&self, user: &str, password: &str, project: Option<&str>) -> Result<Token, AuthError>;
    /// The session of a token still valid at `now`.
    fn authenticate(&self, token: &str, now: SystemTime) -> Result<Session, AuthError>;
}

/// A local account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name.
    pub user: String,
    /// PHC string of the argon2 hash of the password (see [`LocalAuth::hash_password`]).
    pub password_hash: String,
    /// Tenant the account belongs to.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
}

/// The `local` provider: accounts from config with argon2 hashes, random 256-bit tokens valid for `ttl`.
#[derive(Debug)]
pub struct LocalAuth {
    accounts: HashMap<String, Account>,
    ttl: Duration,
    sessions: Mutex<HashMap<String, (Session, SystemTime)>>,
}

/// Default token lifetime (MidoNet's Keystone tokens last hours; one hour here).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

impl LocalAuth {
    /// A provider over `accounts` issuing tokens valid for `ttl`.
    pub fn new(accounts: impl IntoIterator<Item = Account>, ttl: Duration) -> Self {
        let accounts = accounts.into_iter().map(|a| (a.user.clone(), a)).collect();
        LocalAuth { accounts, ttl, sessions: Mutex::new(HashMap::new()) }
    }

    /// The argon2id PHC string for `password` with a random salt (what config files hold).
    pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
        let hash: PasswordHash = Argon2::default().hash_password(password.as_bytes())?;
        Ok(hash.to_string())
    }

    /// Whether `hash` is a PHC string argon2 can verify against (what config files are checked with).
    pub fn check_hash(hash: &str) -> Result<(), String> {
        PasswordHash::new(hash).map(|_| ()).map_err(|e| e.to_string())
    }

    fn issue(&self, session: Session) -> Result<Token, AuthError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| AuthError::Random)?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = SystemTime::now();
        let expires = now + self.ttl;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (_, exp)| *exp > now);
        sessions.insert(key.clone(), (session, expires));
        Ok(Token { key, expires })
    }
}

impl AuthProvider for LocalAuth {
    fn login(&self, user: &str, password: &str, project: Option<&str>) -> Result<Token, AuthError> {
        let account = self.accounts.get(user).ok_or(AuthError::BadCredentials)?;
        Argon2::default()
            .verify_password(password.as_bytes(), account.password_hash.as_str())
            .map_err(|_| AuthError::BadCredentials)?;
        // Only an admin may scope itself to another project.
        let tenant_id = match (account.role, project) {
            (Role::Admin, Some(p)) if !p.is_empty() => p.to_string(),
            _ => account.tenant_id.clone(),
        };
        self.issue(Session { user: account.user.clone(), tenant_id, role: account.role })
    }

    fn authenticate(&self, token: &str, now: SystemTime) -> Result<Session, AuthError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (session, expires) = sessions.get(token).ok_or(AuthError::UnknownToken)?;
        if now >= *expires {
            return Err(AuthError::Expired);
        }
        Ok(session.clone())
    }
}

/// The `mock` provider, for tests only: any user name and password log in as an admin of the
/// project asked for (`X-Auth-Project`), or of tenant `admin`. Tokens expire like [`LocalAuth`]'s.
#[derive(Debug)]
pub struct MockAuth(LocalAuth);

impl MockAuth {
    /// A mock provider issuing tokens valid for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        MockAuth(LocalAuth::new([], ttl))
    }
}

impl AuthProvider for MockAuth {
    fn login(&self, user: &str, _password: &str, project: Option<&str>) -> Result<Token, AuthError> {
        let tenant_id = project.filter(|p| !p.is_empty()).unwrap_or("admin").to_string();
        self.0.issue(Session { user: user.to_string(), tenant_id, role: Role::Admin })
    }

    fn authenticate(&self, token: &str, now: SystemTime) -> Result<Session, AuthError> {
        self.0.authenticate(token, now)
    }
}

/// `POST /midonet-api/login`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(&format!("{PREFIX}/login"), post(login))
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

async fn login(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (user, pass) = basic(&headers).ok_or(ApiError::Unauthorized("Basic credentials required"))?;
    let project = headers.get("x-auth-project").and_then(|v| v.to_str().ok()).map(str::to_string);
    let auth = st.auth.clone();
    let token = blocking(move || Ok(auth.login(&user, &pass, project.as_deref()))).await?.map_err(|e| match e {
        AuthError::Random => ApiError::Internal(e.to_string()),
        _ => ApiError::Unauthorized("invalid credentials"),
    })?;
    let expires = httpdate::fmt_http_date(token.expires);
    let cookie = format!("sessionId={}; Expires={expires}; Path={PREFIX}; HttpOnly", token.key);
    let body =
        serde_json::to_value(TokenBody { key: token.key, expires }).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = media::ok(TOKEN[0], body);
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// Middleware: resolve `X-Auth-Token` to a [`Session`] (a request extension) or answer 401.
pub async fn require_token(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = req.headers().get("x-auth-token").and_then(|v| v.to_str().ok()) else {
        return ApiError::Unauthorized("X-Auth-Token required").into_response();
    };
    match st.auth.authenticate(token, SystemTime::now()) {
        Ok(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        Err(AuthError::Expired) => ApiError::Unauthorized("token expired").into_response(),
        Err(_) => ApiError::Unauthorized("invalid token").into_response(),
    }
}

/// 403 unless the session is an admin's.
pub fn admin_only(session: &Session) -> Result<(), ApiError> {
    match session.role {
        Role::Admin => Ok(()),
        Role::Tenant => Err(ApiError::Forbidden("admin role required")),
    }
}

#[cfg(test)]
mod mock_tests {
    use super::*;

    #[test]
    fn mock_accepts_anything_as_admin() {
        let auth = MockAuth::new(DEFAULT_TOKEN_TTL);
        let token = auth.login("anyone", "whatever", None).expect("login");
        let session = auth.authenticate(&token.key, SystemTime::now()).expect("session");
        assert_eq!(session, Session { user: "anyone".into(), tenant_id: "admin".into(), role: Role::Admin });
        assert_eq!(auth.authenticate("nope", SystemTime::now()), Err(AuthError::UnknownToken));
    }

    #[test]
    fn hashes_are_checked_as_phc_strings() {
        let hash = LocalAuth::hash_password("pw").expect("hash");
        assert_eq!(LocalAuth::check_hash(&hash), Ok(()));
        assert!(LocalAuth::check_hash("plaintext").is_err());
        assert!(LocalAuth::check_hash("").is_err());
    }
}
