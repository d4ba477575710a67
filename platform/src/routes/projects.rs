//! Read-only listings: workspaces, projects, scenarios and bundle versions
//! (scope `read`), each limited to what the credential may see.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::auth::{Need, Principal};
use crate::http::{ApiError, Request, Response};
use crate::routes::authed;
use crate::store::State;
use crate::util::rfc3339;

/// Largest `limit` accepted by list endpoints.
const MAX_LIMIT: i64 = 1000;

pub(crate) fn health(_: &State, _: &Request, _: &[String]) -> Result<Response, ApiError> {
    Ok(Response::json(200, &json!({"status": "ok"})))
}

/// Project ids the caller may see.
fn visible_projects(conn: &Connection, principal: &Principal) -> Result<Vec<String>, ApiError> {
    match principal {
        Principal::Key(k) => Ok(vec![k.project_id.clone()]),
        Principal::User { user_id, .. } => crate::auth::user_project_ids(conn, user_id),
    }
}

fn project_json(conn: &Connection, id: &str) -> Result<Option<Value>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT id, name, workspace_id, created_ms FROM projects WHERE id = ?1",
            [id],
            |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "name": r.get::<_, String>(1)?,
                    "workspace_id": r.get::<_, String>(2)?,
                    "created_at": rfc3339(r.get(3)?),
                }))
            },
        )
        .optional()?)
}

pub(crate) fn workspaces(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let mut stmt = match &principal {
        Principal::User { .. } => conn.prepare(
            "SELECT id, name, created_ms FROM workspaces WHERE owner_id = ?1 ORDER BY created_ms",
        )?,
        Principal::Key(_) => conn.prepare(
            "SELECT w.id, w.name, w.created_ms FROM workspaces w
             JOIN projects p ON p.workspace_id = w.id WHERE p.id = ?1",
        )?,
    };
    let arg = match &principal {
        Principal::User { user_id, .. } => user_id.clone(),
        Principal::Key(k) => k.project_id.clone(),
    };
    let rows = stmt
        .query_map([arg], |r| {
            Ok(json!({
                "id": r.get::<_, String>(0)?,
                "name": r.get::<_, String>(1)?,
                "created_at": rfc3339(r.get(2)?),
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &Value::Array(rows)))
}

pub(crate) fn projects(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let mut out = Vec::new();
    for id in visible_projects(&conn, &principal)? {
        if let Some(p) = project_json(&conn, &id)? {
            out.push(p);
        }
    }
    Ok(Response::json(200, &Value::Array(out)))
}

pub(crate) fn project(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let id = params.first().map(String::as_str).unwrap_or_default();
    principal.check_project(&conn, id)?;
    let p = project_json(&conn, id)?
        .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))?;
    Ok(Response::json(200, &p))
}

fn scenario_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, String>(0)?,
        "name": r.get::<_, String>(1)?,
        "goal": r.get::<_, String>(2)?,
        "project_id": r.get::<_, String>(3)?,
        "created_at": rfc3339(r.get(4)?),
    }))
}

pub(crate) fn scenarios(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let projects = match req.query("project_id") {
        Some(p) => {
            principal.check_project(&conn, p)?;
            vec![p.to_owned()]
        }
        None => visible_projects(&conn, &principal)?,
    };
    let mut stmt = conn.prepare(
        "SELECT id, name, goal, project_id, created_ms FROM scenarios WHERE project_id = ?1
         ORDER BY created_ms, rowid",
    )?;
    let mut out = Vec::new();
    for p in &projects {
        for row in stmt.query_map([p], scenario_row)? {
            out.push(row?);
        }
    }
    Ok(Response::json(200, &Value::Array(out)))
}

pub(crate) fn scenario(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let id = params.first().map(String::as_str).unwrap_or_default();
    let not_found = || ApiError::not_found(format!("scenario {id} not found"));
    let row = conn
        .query_row(
            "SELECT id, name, goal, project_id, created_ms FROM scenarios WHERE id = ?1",
            [id],
            scenario_row,
        )
        .optional()?
        .ok_or_else(not_found)?;
    let project_id = row["project_id"].as_str().unwrap_or_default();
    principal
        .check_project(&conn, project_id)
        .map_err(|_| not_found())?;
    Ok(Response::json(200, &row))
}

pub(crate) fn bundles(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let project_id = principal.resolve_project(&conn, req.query("project_id"))?;
    let limit = match req.query("limit") {
        None => MAX_LIMIT,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let scenario_id = req.query("scenario_id");
    let mut stmt = conn.prepare(
        "SELECT b.id, b.version, b.scenario_id, b.project_id, b.status, b.created_ms, s.name
         FROM bundle_versions b JOIN scenarios s ON s.id = b.scenario_id
         WHERE b.project_id = ?1 AND (?2 IS NULL OR b.scenario_id = ?2)
         ORDER BY b.created_ms DESC, b.version DESC, b.rowid DESC LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![project_id, scenario_id, limit], |r| {
            Ok(json!({
                "id": r.get::<_, String>(0)?,
                "version": r.get::<_, i64>(1)?,
                "scenario_id": r.get::<_, String>(2)?,
                "project_id": r.get::<_, String>(3)?,
                "status": r.get::<_, String>(4)?,
                "created_at": rfc3339(r.get(5)?),
                "name": format!("{} v{}", r.get::<_, String>(6)?, r.get::<_, i64>(1)?),
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &Value::Array(rows)))
}
