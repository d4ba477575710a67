//! Signing in and out of the pages: `/login` (email and password of a local
//! user, then back to the page that asked) and `/logout`.

use crate::accounts::{clear_cookie, end_session, session_user, sign_in, start_session};
use crate::http::{ApiError, Request, Response};
use crate::routes::html::{
    checked_form, csrf_field, field, local_path, page, redirect, with_cookie,
};
use crate::store::State;
use crate::util::html_escape as esc;

fn login_page(req: &Request, status: u16, next: &str, email: &str, error: &str) -> Response {
    let (csrf, cookie) = csrf_field(req);
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(error))
    };
    let body = format!(
        "{error}<form method=\"post\" action=\"/login\">{csrf}\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label>Email <input type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
         <p><button>Sign in</button></p></form>\
         <p class=\"muted\">Local users are made with <code>fluxloop-platform create-user</code>; \
         <code>fluxloop-platform serve --demo</code> prints the demo user's password.</p>",
        next = esc(next),
        email = esc(email),
    );
    with_cookie(page(status, "Sign in", None, &body), cookie)
}

pub(crate) fn login_form(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let next = local_path(req.query("next"));
    if session_user(&state.db(), req)?.is_some() {
        return Ok(redirect(&next));
    }
    Ok(login_page(req, 200, &next, "", ""))
}

pub(crate) fn login(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let form = match checked_form(req) {
        Ok(f) => f,
        Err(refused) => return Ok(refused),
    };
    let next = local_path(field(&form, "next"));
    let email = field(&form, "email").unwrap_or("");
    let password = field(&form, "password").unwrap_or("");
    let conn = state.db();
    let Some(user) = sign_in(&conn, email, password)? else {
        return Ok(login_page(
            req,
            401,
            &next,
            email,
            "Wrong email or password.",
        ));
    };
    let cookie = start_session(&conn, &user, req.base_url().starts_with("https://"))?;
    Ok(redirect(&next).with_header("Set-Cookie", cookie))
}

pub(crate) fn logout_form(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let user = session_user(&state.db(), req)?;
    let (csrf, cookie) = csrf_field(req);
    let body = format!(
        "<form method=\"post\" action=\"/logout\">{csrf}<p><button>Sign out</button></p></form>"
    );
    Ok(with_cookie(
        page(200, "Sign out", user.as_ref(), &body),
        cookie,
    ))
}

pub(crate) fn logout(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    if let Err(refused) = checked_form(req) {
        return Ok(refused);
    }
    end_session(&state.db(), req)?;
    Ok(redirect("/login").with_header("Set-Cookie", clear_cookie()))
}
