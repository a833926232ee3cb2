//! Chains (`Chain-v1`) and rules (`Rule-v2`): `/chains`, `/chains/{id}`, `/chains/{id}/rules`,
//! `/rules/{id}`. Chains have no PUT, rules neither (as in MidoNet).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::media::{self, CHAIN, CHAINS, RULE, RULES};
use super::{parse_id, ApiError, AppState, Base, PREFIX};
use crate::model::{Chain, Rule};

/// Chain and rule paths.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(&format!("{PREFIX}/chains"), get(list).post(create))
        .route(&format!("{PREFIX}/chains/{{id}}"), get(read).delete(remove))
        .route(&format!("{PREFIX}/chains/{{id}}/rules"), get(list_rules).post(create_rule))
        .route(&format!("{PREFIX}/rules/{{id}}"), get(read_rule).delete(remove_rule))
}

fn dto(base: &Base, c: &Chain) -> Value {
    let me = base.item("chains", c.id);
    media::dto(c, me.clone(), &["ruleIds"], vec![("rules", Some(format!("{me}/rules")))])
}

fn rule_dto(base: &Base, r: &Rule) -> Value {
    media::dto(r, base.item("rules", r.id), &[], vec![("chain", base.opt("chains", r.chain_id))])
}

async fn list(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let all = st.run(|t| t.list::<Chain>()).await?;
    let tenant = q.get("tenant_id");
    let items = all.iter().filter(|c| tenant.is_none() || c.tenant_id.as_ref() == tenant).map(|c| dto(&base, c));
    Ok(media::ok(media::negotiate(&headers, CHAINS), Value::Array(items.collect())))
}

async fn read(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Chain", &id)?;
    let c = st.run(move |t| t.get::<Chain>(&id.to_string())).await?;
    Ok(media::ok(media::negotiate(&headers, CHAIN), dto(&base, &c)))
}

async fn create(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let c: Chain = media::body(&headers, &bytes, CHAIN)?;
    let c = st.run(move |t| t.create_chain(c)).await?;
    Ok(media::created(&base.item("chains", c.id), media::negotiate(&headers, CHAIN), dto(&base, &c)))
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Chain", &id)?;
    st.run(move |t| t.delete_chain(id)).await?;
    Ok(media::no_content())
}

async fn list_rules(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Chain", &id)?;
    let rules = st.run(move |t| t.chain_rules(id)).await?;
    Ok(media::ok(media::negotiate(&headers, RULES), Value::Array(rules.iter().map(|r| rule_dto(&base, r)).collect())))
}

async fn create_rule(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id("Chain", &id)?;
    let r: Rule = media::body(&headers, &bytes, RULE)?;
    let r = st.run(move |t| t.create_rule(id, r)).await?;
    Ok(media::created(&base.item("rules", r.id), media::negotiate(&headers, RULE), rule_dto(&base, &r)))
}

async fn read_rule(
    State(st): State<AppState>,
    base: Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id("Rule", &id)?;
    let r = st.run(move |t| t.get_rule(id)).await?;
    Ok(media::ok(media::negotiate(&headers, RULE), rule_dto(&base, &r)))
}

async fn remove_rule(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id("Rule", &id)?;
    st.run(move |t| t.delete_rule(id)).await?;
    Ok(media::no_content())
}
