//! The run batches of the signed-in user's projects: `/run-batches`, newest
//! first with pass rate and CI facts, and `/run-batches/{id}` (what the CLI
//! links to after an upload): failures first, each run's status and its
//! transcript, collapsible.

use rusqlite::params;
use serde_json::Value;

use crate::accounts::User;
use crate::auth::user_owns_project;
use crate::http::{ApiError, Request, Response};
use crate::routes::html::{page, signed_in};
use crate::routes::sync::load_batch;
use crate::store::State;
use crate::util::{html_escape as esc, rfc3339};

/// Most batches listed.
const LIST_MAX: i64 = 200;

/// Renders a JSON value for a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// A link when `url` is an http(s) URL (never `javascript:`), else the text.
fn link(url: &Value, text: &str) -> String {
    match url.as_str() {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            format!("<a href=\"{}\">{}</a>", esc(u), esc(text))
        }
        Some(u) => esc(u),
        None => "—".to_owned(),
    }
}

fn batch_rows(state: &State, user: &User) -> Result<Vec<[String; 8]>, ApiError> {
    let conn = state.db();
    let mut stmt = conn.prepare_cached(
        "SELECT b.id, b.status, b.created_ms, b.upload_meta,
                (SELECT COUNT(*) FROM runs r WHERE r.batch_id = b.id),
                (SELECT COUNT(*) FROM runs r WHERE r.batch_id = b.id AND r.status = 'completed')
         FROM run_batches b JOIN projects p ON p.id = b.project_id
         JOIN workspaces w ON w.id = p.workspace_id WHERE w.owner_id = ?1
         ORDER BY b.created_ms DESC, b.rowid DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![user.id, LIST_MAX], |r| {
            let id: String = r.get(0)?;
            let meta: Value = serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Value::Null);
            let (total, passed): (i64, i64) = (r.get(4)?, r.get(5)?);
            let ci = &meta["ci"];
            let rate = if total == 0 {
                "—".to_owned()
            } else {
                format!("{}% ({passed}/{total})", passed * 100 / total)
            };
            Ok([
                format!("<a href=\"/run-batches/{0}\">{0}</a>", esc(&id)),
                esc(&rfc3339(r.get(2)?)),
                esc(&r.get::<_, String>(1)?),
                rate,
                cell(&ci["provider"]),
                cell(&ci["branch"]),
                cell(&ci["commit"]),
                [
                    link(&ci["build_url"], "build"),
                    link(&ci["pull_request"], "pull request"),
                ]
                .join(" "),
            ])
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn run_batches(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let user = match signed_in(state, req)? {
        Ok(u) => u,
        Err(to_login) => return Ok(to_login),
    };
    let mut html = String::from(
        "<table><tr><th>Batch</th><th>Created</th><th>Status</th><th>Passed</th><th>CI</th>\
         <th>Branch</th><th>Commit</th><th>Links</th></tr>",
    );
    let rows = batch_rows(state, &user)?;
    for row in &rows {
        html.push_str("<tr>");
        for c in row {
            html.push_str(&format!("<td>{c}</td>"));
        }
        html.push_str("</tr>");
    }
    if rows.is_empty() {
        html.push_str("<tr><td colspan=\"8\">No run batches yet: <code>fluxloop test</code> uploads one.</td></tr>");
    }
    html.push_str("</table>");
    Ok(page(200, "Run batches", Some(&user), &html))
}

pub(crate) fn run_batch(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let user = match signed_in(state, req)? {
        Ok(u) => u,
        Err(to_login) => return Ok(to_login),
    };
    let id = params.first().map(String::as_str).unwrap_or_default();
    let conn = state.db();
    let found = match load_batch(&conn, id)? {
        Some((project, batch)) if user_owns_project(&conn, &user.id, &project)? => Some(batch),
        _ => None,
    };
    drop(conn);
    let Some(batch) = found else {
        return Ok(page(
            404,
            "Run batch not found",
            Some(&user),
            &format!(
                "<p>None of your projects has a run batch with the id {}.</p>",
                esc(id)
            ),
        ));
    };
    Ok(page(200, "Run batch", Some(&user), &batch_html(&batch)))
}

fn batch_html(batch: &Value) -> String {
    let mut runs = batch["runs"].as_array().cloned().unwrap_or_default();
    // Failures first; otherwise in upload order (the sort is stable).
    runs.sort_by_key(|r| r["status"] != "failed");
    let failed = runs.iter().filter(|r| r["status"] == "failed").count();
    let ci = &batch["upload_meta"]["ci"];
    let mut html = format!(
        "<table><tr><th>Batch</th><td>{}</td></tr><tr><th>Bundle version</th><td>{}</td></tr>\
         <tr><th>Status</th><td>{}</td></tr><tr><th>Target</th><td>{}</td></tr><tr><th>Started</th><td>{}</td></tr>\
         <tr><th>Completed</th><td>{}</td></tr><tr><th>Runs</th><td>{} ({} passed, {} failed)</td></tr>\
         <tr><th>CI</th><td>{} {} {} {} {}</td></tr></table><h2>Runs</h2>",
        cell(&batch["id"]),
        cell(&batch["bundle_version_id"]),
        cell(&batch["status"]),
        cell(&batch["execution_target"]),
        cell(&batch["started_at"]),
        cell(&batch["completed_at"]),
        runs.len(),
        runs.len() - failed,
        failed,
        cell(&ci["provider"]),
        cell(&ci["branch"]),
        cell(&ci["commit"]),
        link(&ci["build_url"], "build"),
        link(&ci["pull_request"], "pull request"),
    );
    html.push_str("<table><tr><th>Run</th><th>Status</th><th>Transcript</th><th>Metrics</th></tr>");
    for run in &runs {
        let mut transcript = String::new();
        for m in run["result"]["transcript"].as_array().into_iter().flatten() {
            transcript.push_str(&format!(
                "<b>{}</b>: {}\n",
                cell(&m["role"]),
                cell(&m["content"])
            ));
        }
        let status = if run["status"] == "failed" {
            "failed"
        } else {
            "passed"
        };
        html.push_str(&format!(
            "<tr><td>{}<br><span class=\"muted\">input {}</span></td><td class=\"{status}\">{}</td>\
             <td><details{open}><summary>transcript</summary><pre>{}</pre></details></td><td>{}</td></tr>",
            cell(&run["id"]),
            cell(&run["input_item_id"]),
            cell(&run["status"]),
            transcript,
            cell(&run["result"]["metrics"]),
            open = if status == "failed" { " open" } else { "" },
        ));
    }
    html.push_str("</table>");
    html
}
