//! The route table and dispatch: which handler serves which method and path,
//! 404 for unknown paths, 405 (with `Allow`) for known paths with another
//! method. The table is public so a test can keep `openapi.yaml` in step.

mod account;
mod batches;
pub(crate) mod device;
pub(crate) mod html;
mod keys;
mod oidc;
mod pages;
mod projects;
mod settings;
mod shards;
mod sync;

pub(crate) use html::{SCRIPT, STYLE};

use std::sync::MutexGuard;

use rusqlite::Connection;

use crate::auth::{authenticate, Need, Principal};
use crate::http::{ApiError, Request, Response};
use crate::store::State;

/// A handler: state, request, and the values of the `{...}` path segments.
type Handler = fn(&State, &Request, &[String]) -> Result<Response, ApiError>;

/// One served method and path; `{id}` marks a path parameter.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, e.g. `/api/run-batches/{id}`.
    pub path: &'static str,
    handler: Handler,
}

const fn route(method: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route the server answers.
pub static ROUTES: &[Route] = &[
    route("GET", "/", pages::index),
    route("GET", "/device", pages::device_form),
    route("POST", "/device", pages::device_decide),
    route("GET", "/login", account::login_form),
    route("POST", "/login", account::login),
    route("GET", "/logout", account::logout_form),
    route("POST", "/logout", account::logout),
    route("GET", "/settings/api-keys", settings::api_keys),
    route("POST", "/settings/api-keys", settings::create),
    route("POST", "/settings/api-keys/revoke", settings::revoke),
    route("GET", "/run-batches", batches::run_batches),
    route("GET", "/run-batches/{id}", batches::run_batch),
    route("GET", "/api/health", projects::health),
    route("POST", "/api/cli-connect/start", device::start),
    route("POST", "/api/cli-connect/complete", device::complete),
    route("POST", "/api/cli-connect/refresh", device::refresh),
    route("POST", "/api/cli-connect/logout", device::logout),
    route("POST", "/api/api-keys", keys::create),
    route("GET", "/api/api-keys", keys::list),
    route("GET", "/api/api-keys/self", keys::whoami),
    route("POST", "/api/api-keys/revoke", keys::revoke),
    route("POST", "/api/auth/oidc/exchange", oidc::exchange),
    route(
        "GET",
        "/api/projects/{project_id}/trust-policies",
        oidc::list,
    ),
    route(
        "POST",
        "/api/projects/{project_id}/trust-policies",
        oidc::create,
    ),
    route("DELETE", "/api/trust-policies/{id}", oidc::remove),
    route("GET", "/api/workspaces", projects::workspaces),
    route("GET", "/api/projects", projects::projects),
    route("GET", "/api/projects/{id}", projects::project),
    route("GET", "/api/scenarios", projects::scenarios),
    route("GET", "/api/scenarios/{id}", projects::scenario),
    route("GET", "/api/bundles", projects::bundles),
    route("POST", "/api/sync/pull", sync::pull),
    route("POST", "/api/sync/upload", sync::upload),
    route("GET", "/api/run-batches", shards::find),
    route("GET", "/api/run-batches/{id}", sync::run_batch),
];

/// Matches `path` against a template; returns the decoded parameters.
fn match_path(template: &str, path: &str) -> Option<Vec<String>> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut params = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') => {
                if ps.is_empty() {
                    return None;
                }
                params.push(crate::util::percent_decode(ps, false));
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// The template of the route that serves `method` on `path`, if one does.
pub(crate) fn template(method: &str, path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|r| r.method == method && match_path(r.path, path).is_some())
        .map(|r| r.path)
}

/// Answers one request.
pub(crate) fn handle(state: &State, req: &Request) -> Response {
    let mut allowed: Vec<&str> = Vec::new();
    for r in ROUTES {
        if let Some(params) = match_path(r.path, &req.path) {
            if r.method == req.method {
                return (r.handler)(state, req, &params).unwrap_or_else(Response::error);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        return Response::error(ApiError::not_found(format!("no route for {}", req.path)));
    }
    let mut e = ApiError::new(
        405,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; use {}",
            req.method,
            req.path,
            allowed.join(", ")
        ),
    );
    e.headers.push(("Allow", allowed.join(", ")));
    Response::error(e)
}

/// Locks the database, identifies the caller and checks the scope.
fn authed<'a>(
    state: &'a State,
    req: &Request,
    need: Need,
) -> Result<(MutexGuard<'a, Connection>, Principal), ApiError> {
    let conn = state.db();
    let principal = authenticate(&conn, req.header("authorization"))?;
    principal.require(need)?;
    Ok((conn, principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_paths() {
        assert_eq!(
            match_path("/api/x/{id}", "/api/x/a%20b"),
            Some(vec!["a b".to_owned()])
        );
        assert_eq!(match_path("/api/x/{id}", "/api/x/"), None);
        assert_eq!(match_path("/api/x", "/api/x/"), None);
        assert_eq!(match_path("/", "/"), Some(vec![]));
    }
}
