//! API keys (PLATFORM-API §3): create, list, describe the caller's own key,
//! revoke. Creating, listing and revoking need admin rights on the project: a
//! login token of its owner, or an `admin` key of that same project.

use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{
    authenticate, find_key, insert_key, user_project_ids, KeyRecord, Need, Principal, Scope,
    KEY_COLUMNS,
};
use crate::http::{ApiError, Request, Response};
use crate::routes::authed;
use crate::store::State;
use crate::util::{now_ms, rfc3339};

/// Longest lifetime a key may be created with.
const MAX_EXPIRY_DAYS: u32 = 3650;

/// Body of `POST /api/api-keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    project_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    key_type: Option<String>,
    scope: Option<String>,
    expires_in_days: Option<u32>,
}

/// Body of `POST /api/api-keys/revoke`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    id: Option<String>,
    key: Option<String>,
}

pub(crate) fn create(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: CreateBody = req.json()?;
    let (conn, principal) = authed(state, req, Need::Admin)?;
    let project_id = principal.resolve_project(&conn, body.project_id.as_deref())?;
    let name = body.name.unwrap_or_else(|| "api key".to_owned());
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "name must be 1 to 200 characters".to_owned(),
        ));
    }
    let key_type = body.key_type.unwrap_or_else(|| "user".to_owned());
    let scope_name = body.scope.unwrap_or_else(|| "read-write".to_owned());
    let scope = Scope::parse(&scope_name).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "scope must be read, write, read-write or admin, not `{scope_name}`"
        ))
    })?;
    let expires_ms = match body.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => {
            Some(now_ms().saturating_add(i64::from(d) * 24 * 3600 * 1000))
        }
        Some(d) => {
            return Err(ApiError::unprocessable(format!(
                "expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}, not {d}"
            )))
        }
    };
    let (rec, key) = insert_key(&conn, &project_id, &name, &key_type, scope, expires_ms)?;
    let mut out = rec.to_json();
    if let Value::Object(map) = &mut out {
        map.insert("key".to_owned(), Value::String(key));
    }
    Ok(Response::json(201, &out))
}

pub(crate) fn list(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Admin)?;
    let projects = match (req.query("project_id"), &principal) {
        (Some(p), _) => {
            principal.check_project(&conn, p)?;
            vec![p.to_owned()]
        }
        (None, Principal::Key(k)) => vec![k.project_id.clone()],
        (None, Principal::User { user_id, .. }) => user_project_ids(&conn, user_id)?,
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE project_id = ?1 ORDER BY created_ms, rowid"
    ))?;
    let mut out = Vec::new();
    for p in &projects {
        for rec in stmt.query_map([p], KeyRecord::from_row)? {
            out.push(rec?.to_json());
        }
    }
    Ok(Response::json(200, &Value::Array(out)))
}

pub(crate) fn whoami(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let conn = state.db();
    // `authenticate` already counted this call as a use of the key, so the
    // record below includes it.
    match authenticate(&conn, req.header("authorization"))? {
        Principal::Key(k) => Ok(Response::json(200, &k.to_json())),
        Principal::User {
            user_id,
            email,
            expires_ms,
            ..
        } => Ok(Response::json(
            200,
            &json!({
                "type": "access_token",
                "scope": "admin",
                "user_id": user_id,
                "user_email": email,
                "expires_at": rfc3339(expires_ms),
            }),
        )),
    }
}

pub(crate) fn revoke(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: RevokeBody = req.json()?;
    let conn = state.db();
    let principal = authenticate(&conn, req.header("authorization"))?;
    // Holding a key is enough to revoke it (PLATFORM-API §3): the bearer
    // is the key named in the body. Anything else needs admin.
    let own = match (&principal, body.key.as_deref()) {
        (Principal::Key(k), Some(key)) => find_key(&conn, key)?.is_some_and(|r| r.id == k.id),
        _ => false,
    };
    if !own {
        principal.require(Need::Admin)?;
    }
    let rec = match (
        body.id.filter(|s| !s.is_empty()),
        body.key.filter(|s| !s.is_empty()),
    ) {
        (Some(id), _) => conn
            .query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [&id],
                KeyRecord::from_row,
            )
            .optional()?,
        (None, Some(key)) => find_key(&conn, &key)?,
        (None, None) => {
            return Err(ApiError::invalid(
                "give the key's `id` or the `key` itself".to_owned(),
            ))
        }
    };
    let not_found = || ApiError::not_found("API key not found".to_owned());
    let rec = rec.ok_or_else(not_found)?;
    // A key of another project answers like an unknown one.
    principal
        .check_project(&conn, &rec.project_id)
        .map_err(|_| not_found())?;
    conn.execute(
        "UPDATE api_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL",
        params![now_ms(), rec.id],
    )?;
    let rec = conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
        [&rec.id],
        KeyRecord::from_row,
    )?;
    Ok(Response::json(200, &rec.to_json()))
}
