//! Keyless CI over HTTP (issue 19): the OIDC token exchange, open to anyone
//! holding an ID token, and the trust policies of a project (admin: a login
//! token of its owner or an `admin` key of that project).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Need;
use crate::http::{ApiError, Request, Response};
use crate::oidc::policy::{self, NewTrustPolicy};
use crate::oidc::{exchange as run_exchange, Refusal};
use crate::routes::authed;
use crate::store::State;

/// Body of `POST /api/auth/oidc/exchange`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    token: String,
    project_id: Option<String>,
}

/// Body of `POST /api/projects/{project_id}/trust-policies`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    issuer: String,
    audience: Option<String>,
    conditions: BTreeMap<String, String>,
    scope: String,
    name: Option<String>,
}

pub(crate) fn exchange(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: ExchangeBody = req.json()?;
    let outcome = run_exchange(state, &body.token, body.project_id.as_deref());
    log(state, &outcome);
    match outcome {
        Ok(grant) => Ok(Response::json(200, &grant.to_json())),
        Err(Refusal::Rejected(r)) => Err(r.into_api_error()),
        Err(Refusal::Failed(e)) => Err(e),
    }
}

/// One line per exchange in the server log: the outcome and the claims
/// that matched (or, refused, the non-secret ones presented). Never the token.
fn log(state: &State, outcome: &Result<crate::oidc::Grant, Refusal>) {
    if !state.log {
        return;
    }
    match outcome {
        Ok(grant) => eprintln!(
            "oidc exchange accepted: policy {} claims {}",
            grant.policy_id,
            Value::Object(grant.matched.clone())
        ),
        Err(Refusal::Rejected(r)) => eprintln!(
            "oidc exchange refused ({}): claims {}",
            r.reason.as_str(),
            Value::Object(r.claims.clone())
        ),
        Err(Refusal::Failed(e)) => eprintln!("oidc exchange failed: {}", e.message),
    }
}

pub(crate) fn list(state: &State, req: &Request, params: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Admin)?;
    let project_id = &params[0];
    principal.check_project(&conn, project_id)?;
    let policies: Vec<Value> = policy::list(&conn, Some(project_id))?
        .iter()
        .map(policy::TrustPolicy::to_json)
        .collect();
    Ok(Response::json(200, &json!({ "trust_policies": policies })))
}

pub(crate) fn create(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let body: CreateBody = req.json()?;
    let (conn, principal) = authed(state, req, Need::Admin)?;
    let project_id = &params[0];
    principal.check_project(&conn, project_id)?;
    let new = NewTrustPolicy {
        issuer: body.issuer,
        audience: body.audience,
        conditions: body.conditions,
        scope: body.scope,
        name: body.name,
    };
    let on_loopback = state.oidc.platform_on_loopback();
    let created = policy::prepare(project_id, new, on_loopback).map_err(ApiError::unprocessable)?;
    policy::insert(&conn, &created)?;
    Ok(Response::json(201, &created.to_json()))
}

pub(crate) fn remove(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Admin)?;
    let id = &params[0];
    let not_found = || ApiError::not_found(format!("trust policy {id} not found"));
    let found = policy::get(&conn, id)?.ok_or_else(not_found)?;
    // A policy of another project answers like an unknown one.
    principal
        .check_project(&conn, &found.project_id)
        .map_err(|_| not_found())?;
    policy::remove(&conn, id)?;
    Ok(Response::empty(204))
}
