//! `/settings/api-keys`: the signed-in user's keys (name, masked suffix,
//! type, scope, created, last used, usage count, status), a Create API Key
//! form whose key is shown once, a Revoke button behind a confirmation, and
//! the trust policies of keyless CI (issue 19) with their use.

use rusqlite::{params, Connection, OptionalExtension};

use crate::accounts::User;
use crate::auth::{insert_key, user_project_ids, KeyRecord, Scope, KEY_COLUMNS};
use crate::http::{ApiError, Request, Response};
use crate::routes::html::{checked_form, csrf_field, field, page, signed_in, with_cookie};
use crate::store::State;
use crate::util::{html_escape as esc, now_ms, rfc3339, rfc3339_opt};

/// Longest lifetime a key may be created with (as the API).
const MAX_EXPIRY_DAYS: i64 = 3650;

/// The user's keys with their project names and stored suffixes.
fn keys_of(
    conn: &Connection,
    user: &User,
) -> Result<Vec<(KeyRecord, String, Option<String>)>, ApiError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS}, (SELECT name FROM projects p WHERE p.id = api_keys.project_id), key_suffix
         FROM api_keys WHERE project_id IN
           (SELECT p.id FROM projects p JOIN workspaces w ON w.id = p.workspace_id WHERE w.owner_id = ?1)
         ORDER BY created_ms DESC, rowid DESC"
    ))?;
    let rows = stmt
        .query_map([&user.id], |r| {
            Ok((KeyRecord::from_row(r)?, r.get(11)?, r.get(12)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn projects_of(conn: &Connection, user: &User) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for id in user_project_ids(conn, &user.id)? {
        let name: String =
            conn.query_row("SELECT name FROM projects WHERE id = ?1", [&id], |r| {
                r.get(0)
            })?;
        out.push((id, name));
    }
    Ok(out)
}

fn status_of(k: &KeyRecord) -> &'static str {
    if k.revoked_ms.is_some() {
        "revoked"
    } else if k.expires_ms.is_some_and(|e| now_ms() >= e) {
        "expired"
    } else {
        "active"
    }
}

/// The table and the create form; `notice` goes above them.
fn keys_page(
    state: &State,
    req: &Request,
    user: &User,
    status: u16,
    notice: &str,
) -> Result<Response, ApiError> {
    let conn = state.db();
    let (csrf, cookie) = csrf_field(req);
    let projects = projects_of(&conn, user)?;
    let options: String = projects
        .iter()
        .map(|(id, name)| format!("<option value=\"{}\">{}</option>", esc(id), esc(name)))
        .collect();
    let mut html = format!(
        "{notice}<h2>Create API Key</h2><form method=\"post\" action=\"/settings/api-keys\">{csrf}\
         <label>Name <input name=\"name\" required maxlength=\"200\"></label>\
         <label>Project <select name=\"project_id\">{options}</select></label>\
         <label>Type <select name=\"type\"><option value=\"user\">user</option>\
         <option value=\"service-account\">service-account</option></select></label>\
         <label>Scope <select name=\"scope\"><option>read-write</option><option>read</option>\
         <option>write</option><option>admin</option></select></label>\
         <label>Expires after (days, optional) <input name=\"expires_in_days\" inputmode=\"numeric\" pattern=\"[0-9]*\"></label>\
         <p><button>Create</button></p></form><h2>Keys</h2>\
         <table><tr><th>Name</th><th>Key</th><th>Project</th><th>Type</th><th>Scope</th><th>Created</th>\
         <th>Last used</th><th>Usage count</th><th>Status</th><th></th></tr>"
    );
    let opt = |v: Option<String>| v.map(|s| esc(&s)).unwrap_or_else(|| "—".to_owned());
    let rows = keys_of(&conn, user)?;
    for (k, project, suffix) in &rows {
        let status = status_of(k);
        let revoke = if status == "active" {
            format!(
                "<form method=\"post\" action=\"/settings/api-keys/revoke\">{csrf}\
                 <input type=\"hidden\" name=\"id\" value=\"{}\"><button>Revoke</button></form>",
                esc(&k.id)
            )
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
            esc(&k.name),
            suffix.as_ref().map_or_else(|| "—".to_owned(), |s| format!("…{}", esc(s))),
            esc(project),
            esc(&k.key_type),
            esc(k.scope.as_str()),
            esc(&rfc3339(k.created_ms)),
            opt(rfc3339_opt(k.last_used_ms)),
            k.usage_count,
            status,
        ));
    }
    if rows.is_empty() {
        html.push_str("<tr><td colspan=\"10\">No keys yet.</td></tr>");
    }
    html.push_str("</table>");
    html.push_str(&policies_table(&conn, &projects)?);
    Ok(with_cookie(
        page(status, "API keys", Some(user), &html),
        cookie,
    ))
}

/// The trust policies of the user's projects: who may exchange an OIDC
/// token for which scope, and how much each was used (exchanges and
/// requests made with the tokens it issued).
fn policies_table(conn: &Connection, projects: &[(String, String)]) -> Result<String, ApiError> {
    let mut html = String::from(
        "<h2>Trust policies</h2><p class=\"muted\">CI jobs whose OIDC identity matches a policy get a \
         short-lived token without any stored key. Manage them with <code>fluxloop-platform trust</code>.</p>\
         <table><tr><th>Name</th><th>Issuer</th><th>Conditions</th><th>Scope</th><th>Last used</th><th>Uses</th></tr>",
    );
    let mut any = false;
    for (project_id, _) in projects {
        for p in crate::oidc::policy::list(conn, Some(project_id))? {
            any = true;
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                esc(&p.issuer),
                esc(&p.conditions_text()),
                esc(&p.scope),
                p.last_used_at().map_or_else(|| "—".to_owned(), |t| esc(&t)),
                p.use_count,
            ));
        }
    }
    if !any {
        html.push_str("<tr><td colspan=\"6\">No trust policies yet.</td></tr>");
    }
    html.push_str("</table>");
    Ok(html)
}

pub(crate) fn api_keys(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    match signed_in(state, req)? {
        Ok(user) => keys_page(state, req, &user, 200, ""),
        Err(to_login) => Ok(to_login),
    }
}

/// What the create form asked for, checked; the message when it cannot be.
fn parse_create(
    form: &[(String, String)],
    projects: &[(String, String)],
) -> Result<(String, String, String, Scope, Option<i64>), String> {
    let name = field(form, "name").unwrap_or("").trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("The name must be 1 to 200 characters.".to_owned());
    }
    let project = field(form, "project_id").unwrap_or("");
    if !projects.iter().any(|(id, _)| id == project) {
        return Err("Choose one of your projects.".to_owned());
    }
    let key_type = field(form, "type").unwrap_or("user");
    if key_type != "user" && key_type != "service-account" {
        return Err("The type must be user or service-account.".to_owned());
    }
    let scope = Scope::parse(field(form, "scope").unwrap_or(""))
        .ok_or("The scope must be read, write, read-write or admin.")?;
    let expires = match field(form, "expires_in_days").map(str::trim) {
        None | Some("") => None,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if (1..=MAX_EXPIRY_DAYS).contains(&n) => {
                Some(now_ms().saturating_add(n * 24 * 3600 * 1000))
            }
            _ => return Err(format!("Expiry must be 1 to {MAX_EXPIRY_DAYS} days.")),
        },
    };
    Ok((
        name,
        project.to_owned(),
        key_type.to_owned(),
        scope,
        expires,
    ))
}

pub(crate) fn create(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let form = match checked_form(req) {
        Ok(f) => f,
        Err(refused) => return Ok(refused),
    };
    let user = match signed_in(state, req)? {
        Ok(u) => u,
        Err(to_login) => return Ok(to_login),
    };
    let projects = projects_of(&state.db(), &user)?;
    let (name, project, key_type, scope, expires) = match parse_create(&form, &projects) {
        Ok(v) => v,
        Err(msg) => {
            let notice = format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&msg));
            return keys_page(state, req, &user, 422, &notice);
        }
    };
    let key = {
        let conn = state.db();
        insert_key(&conn, &project, &name, &key_type, scope, expires)?.1
    };
    let notice = format!(
        "<div class=\"notice\" role=\"status\"><p>New key <b>{}</b>. Copy it now: <b>you won't see it again</b>.</p>\
         <p><label>Key <input id=\"new-key\" class=\"key\" readonly value=\"{}\"></label></p>\
         <p><button type=\"button\" data-copy=\"new-key\">Copy</button></p></div>",
        esc(&name),
        esc(&key)
    );
    keys_page(state, req, &user, 201, &notice)
}

pub(crate) fn revoke(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let form = match checked_form(req) {
        Ok(f) => f,
        Err(refused) => return Ok(refused),
    };
    let user = match signed_in(state, req)? {
        Ok(u) => u,
        Err(to_login) => return Ok(to_login),
    };
    let id = field(&form, "id").unwrap_or("");
    let conn = state.db();
    let found: Option<String> = conn
        .query_row(
            "SELECT k.name FROM api_keys k JOIN projects p ON p.id = k.project_id
             JOIN workspaces w ON w.id = p.workspace_id WHERE k.id = ?1 AND w.owner_id = ?2",
            params![id, user.id],
            |r| r.get(0),
        )
        .optional()?;
    drop(conn);
    let Some(name) = found else {
        let notice = "<p class=\"error\" role=\"alert\">No such key.</p>";
        return keys_page(state, req, &user, 404, notice);
    };
    if field(&form, "confirm") != Some("yes") {
        let (csrf, cookie) = csrf_field(req);
        let body = format!(
            "<p>Revoke the key <b>{n}</b>? Every program using it gets <code>key revoked</code> from then on; \
             this cannot be undone.</p><form method=\"post\" action=\"/settings/api-keys/revoke\">{csrf}\
             <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <button>Revoke {n}</button> <a href=\"/settings/api-keys\">Cancel</a></form>",
            n = esc(&name),
            id = esc(id),
        );
        return Ok(with_cookie(
            page(200, "Revoke API key", Some(&user), &body),
            cookie,
        ));
    }
    state.db().execute(
        "UPDATE api_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL",
        params![now_ms(), id],
    )?;
    let notice = format!(
        "<p class=\"notice\" role=\"status\">Revoked <b>{}</b>.</p>",
        esc(&name)
    );
    keys_page(state, req, &user, 200, &notice)
}
