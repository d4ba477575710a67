//! The pages for people: an index, `/device` (confirm a login code and
//! authorize or deny it as the local user), `/settings/api-keys`, and
//! `/run-batches/{id}` (what the CLI links to after an upload).
//!
//! Server-rendered HTML with plain forms and no JavaScript; every dynamic value
//! goes through `html_escape`. The pages sign in as the local user without a
//! password, which is safe only because the server listens on loopback and
//! answers only its own names (`guard::Hosts`, before any route). Form posts
//! that change state carry the browser session's CSRF token and a same-origin
//! `Origin` (`guard::Csrf`).

use serde_json::Value;

use crate::auth::{KeyRecord, KEY_COLUMNS};
use crate::http::{ApiError, Request, Response};
use crate::routes::device::{decide, pending_info, Decision};
use crate::routes::sync::load_batch;
use crate::store::{State, LOCAL_USER_EMAIL};
use crate::util::{
    html_escape as esc, normalize_user_code, now_ms, parse_form, rfc3339, rfc3339_opt,
};

/// The one stylesheet, inline; the content policy allows exactly its hash.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
.code{font-size:2rem;font-family:monospace;letter-spacing:.2rem}button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}\
pre{white-space:pre-wrap;margin:0}.muted{color:#777}";

fn page(status: u16, title: &str, body: &str) -> Response {
    Response::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · FluxLoop local platform</title>\
             <style>{STYLE}</style></head><body><p class=\"muted\"><a href=\"/\">FluxLoop local platform</a> · \
             signed in as {user}</p><h1>{t}</h1>{body}</body></html>",
            t = esc(title),
            user = esc(LOCAL_USER_EMAIL),
        ),
    )
}

pub(crate) fn index(_: &State, _: &Request, _: &[String]) -> Result<Response, ApiError> {
    Ok(page(
        200,
        "Local platform",
        "<ul><li><a href=\"/device\">Authorize a CLI login</a></li>\
         <li><a href=\"/settings/api-keys\">API keys</a></li>\
         <li><a href=\"/api/projects\">API</a> (needs a Bearer token)</li></ul>\
         <p>Run batches are linked from <code>fluxloop sync upload</code> output.</p>",
    ))
}

pub(crate) fn device_form(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let Some(code) = req
        .query("user_code")
        .map(normalize_user_code)
        .filter(|c| !c.is_empty())
    else {
        return Ok(page(
            200,
            "Authorize a device",
            "<form method=\"get\" action=\"/device\"><p>Enter the code shown by <code>fluxloop auth login</code>:</p>\
             <p><input name=\"user_code\" placeholder=\"XXXX-XXXX\" autofocus> <button>Continue</button></p></form>",
        ));
    };
    let conn = state.db();
    let Some((device_name, expires_ms)) = pending_info(&conn, &code)? else {
        return Ok(page(
            404,
            "Code not found",
            &format!(
                "<p>No pending login has the code <span class=\"code\">{}</span>. It may have expired or been used; \
                 run <code>fluxloop auth login</code> again.</p>",
                esc(&code)
            ),
        ));
    };
    if now_ms() >= expires_ms {
        return Ok(page(
            410,
            "Code expired",
            "<p>This code has expired. Run <code>fluxloop auth login</code> again.</p>",
        ));
    }
    let device = device_name
        .map(|n| format!("<p>Device: <b>{}</b></p>", esc(&n)))
        .unwrap_or_default();
    let (token, cookie) = req.csrf.issue(req);
    let mut r = page(
        200,
        "Authorize a device",
        &format!(
            "<p>Check that this code matches the one in your terminal:</p><p class=\"code\">{code}</p>{device}\
             <p>Authorizing lets the FluxLoop CLI act as <b>{user}</b> (admin on your projects).</p>\
             <form method=\"post\" action=\"/device\"><input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <button name=\"action\" value=\"approve\">Authorize</button>\
             <button name=\"action\" value=\"deny\">Deny</button></form>",
            code = esc(&code),
            user = esc(LOCAL_USER_EMAIL),
            token = esc(&token),
        ),
    );
    if let Some(c) = cookie {
        r = r.with_header("Set-Cookie", c);
    }
    Ok(r)
}

pub(crate) fn device_decide(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let form = parse_form(&String::from_utf8_lossy(&req.body));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Err(why) = req.csrf.verify(req, get("csrf")) {
        return Ok(page(
            403,
            "Request refused",
            &format!(
                "<p>Nothing was decided: {}.</p><p>Open the link from your terminal again and use the buttons on that page.</p>",
                esc(&why)
            ),
        ));
    }
    let code = normalize_user_code(get("user_code").unwrap_or(""));
    let approve = match get("action") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Ok(page(
                400,
                "Nothing decided",
                "<p>Choose Authorize or Deny.</p>",
            ))
        }
    };
    let conn = state.db();
    Ok(match decide(&conn, &code, &state.local_user_id, approve)? {
        Decision::Done if approve => page(
            200,
            "Device authorized",
            &format!("<p>Code <span class=\"code\">{}</span> is authorized. You can return to your terminal.</p>", esc(&code)),
        ),
        Decision::Done => page(200, "Login denied", "<p>The login was denied. The CLI will stop waiting.</p>"),
        Decision::NotFound => page(404, "Code not found", "<p>No pending login has this code.</p>"),
        Decision::Expired => page(410, "Code expired", "<p>This code has expired.</p>"),
    })
}

pub(crate) fn api_keys(state: &State, _: &Request, _: &[String]) -> Result<Response, ApiError> {
    let conn = state.db();
    let mut stmt = conn.prepare(&format!(
        "SELECT {KEY_COLUMNS}, (SELECT name FROM projects p WHERE p.id = k.project_id)
         FROM api_keys k WHERE project_id IN
           (SELECT p.id FROM projects p JOIN workspaces w ON w.id = p.workspace_id WHERE w.owner_id = ?1)
         ORDER BY created_ms, rowid"
    ))?;
    let rows = stmt
        .query_map([&state.local_user_id], |r| {
            Ok((KeyRecord::from_row(r)?, r.get::<_, Option<String>>(11)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let opt = |v: Option<String>| v.map(|s| esc(&s)).unwrap_or_else(|| "—".to_owned());
    let mut html = String::from(
        "<p>Keys are shown once, when created; only their hashes are stored.</p><table><tr><th>Name</th><th>Project</th>\
         <th>Type</th><th>Scope</th><th>Created</th><th>Last used</th><th>Uses</th><th>Revoked</th></tr>",
    );
    for (k, project) in &rows {
        html.push_str(&format!(
            "<tr><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.name),
            esc(&k.id),
            opt(project.clone()),
            esc(&k.key_type),
            esc(k.scope.as_str()),
            esc(&rfc3339(k.created_ms)),
            opt(rfc3339_opt(k.last_used_ms)),
            k.usage_count,
            opt(rfc3339_opt(k.revoked_ms)),
        ));
    }
    if rows.is_empty() {
        html.push_str("<tr><td colspan=\"8\">No keys yet. Create one with <code>fluxloop apikeys create</code>.</td></tr>");
    }
    html.push_str("</table>");
    Ok(page(200, "API keys", &html))
}

/// Renders a JSON value for a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

pub(crate) fn run_batch(
    state: &State,
    _: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let id = params.first().map(String::as_str).unwrap_or_default();
    let conn = state.db();
    let Some((_, batch)) = load_batch(&conn, id)? else {
        return Ok(page(
            404,
            "Run batch not found",
            &format!("<p>No run batch has the id {}.</p>", esc(id)),
        ));
    };
    let runs = batch["runs"].as_array().cloned().unwrap_or_default();
    let failed = runs.iter().filter(|r| r["status"] == "failed").count();
    let mut html = format!(
        "<table><tr><th>Batch</th><td>{}</td></tr><tr><th>Bundle version</th><td>{}</td></tr>\
         <tr><th>Status</th><td>{}</td></tr><tr><th>Target</th><td>{}</td></tr><tr><th>Started</th><td>{}</td></tr>\
         <tr><th>Completed</th><td>{}</td></tr><tr><th>Runs</th><td>{} ({} passed, {} failed)</td></tr>\
         <tr><th>Upload</th><td><pre>{}</pre></td></tr></table><h2>Runs</h2>",
        cell(&batch["id"]),
        cell(&batch["bundle_version_id"]),
        cell(&batch["status"]),
        cell(&batch["execution_target"]),
        cell(&batch["started_at"]),
        cell(&batch["completed_at"]),
        runs.len(),
        runs.len() - failed,
        failed,
        esc(&serde_json::to_string_pretty(&batch["upload_meta"]).unwrap_or_default()),
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
        html.push_str(&format!(
            "<tr><td>{}<br><span class=\"muted\">input {}</span></td><td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>",
            cell(&run["id"]),
            cell(&run["input_item_id"]),
            cell(&run["status"]),
            transcript,
            cell(&run["result"]["metrics"]),
        ));
    }
    html.push_str("</table>");
    Ok(page(200, "Run batch", &html))
}
