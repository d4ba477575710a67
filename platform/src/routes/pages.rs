//! The index and `/device`: confirm a login code and authorize or deny it
//! as the signed-in user. The other pages: `account` (sign in and out),
//! `settings` (API keys), `batches` (run batches); `html` holds the frame.
//!
//! Server-rendered HTML with plain forms; every dynamic value goes through
//! `html_escape`. The server answers only its own names (`guard::Hosts`,
//! before any route), and form posts that change state carry the browser's
//! CSRF token and a same-origin `Origin` (`guard::Csrf`).

use crate::accounts::session_user;
use crate::http::{ApiError, Request, Response};
use crate::routes::device::{decide, pending_info, Decision};
use crate::routes::html::{
    checked_form, csrf_field, field, page, percent_encode, redirect, signed_in, with_cookie,
};
use crate::store::State;
use crate::util::{html_escape as esc, normalize_user_code, now_ms};

pub(crate) fn index(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let user = session_user(&state.db(), req)?;
    let account = if user.is_some() {
        "<li><a href=\"/logout\">Sign out</a></li>"
    } else {
        "<li><a href=\"/login\">Sign in</a></li>"
    };
    Ok(page(
        200,
        "Local platform",
        user.as_ref(),
        &format!(
            "<ul><li><a href=\"/device\">Authorize a CLI login</a></li>\
             <li><a href=\"/settings/api-keys\">API keys</a></li>\
             <li><a href=\"/run-batches\">Run batches</a></li>{account}</ul>"
        ),
    ))
}

pub(crate) fn device_form(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let user = match signed_in(state, req)? {
        Ok(u) => u,
        Err(to_login) => return Ok(to_login),
    };
    let Some(code) = req
        .query("user_code")
        .map(normalize_user_code)
        .filter(|c| !c.is_empty())
    else {
        return Ok(page(
            200,
            "Authorize a device",
            Some(&user),
            "<form method=\"get\" action=\"/device\"><p><label>Enter the code shown by <code>fluxloop auth login</code>: \
             <input name=\"user_code\" placeholder=\"XXXX-XXXX\" autofocus></label> <button>Continue</button></p></form>",
        ));
    };
    let conn = state.db();
    let Some((device_name, expires_ms)) = pending_info(&conn, &code)? else {
        return Ok(page(
            404,
            "Code not found",
            Some(&user),
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
            Some(&user),
            "<p>This code has expired. Run <code>fluxloop auth login</code> again.</p>",
        ));
    }
    let device = device_name
        .map(|n| format!("<p>Device: <b>{}</b></p>", esc(&n)))
        .unwrap_or_default();
    let (csrf, cookie) = csrf_field(req);
    let body = format!(
        "<p>Check that this code matches the one in your terminal:</p><p class=\"code\">{code}</p>{device}\
         <p>Authorizing lets the FluxLoop CLI act as <b>{email}</b> with <b>admin</b> access to your projects \
         (it can read scenarios, upload results and manage API keys) until you sign it out.</p>\
         <form method=\"post\" action=\"/device\"><input type=\"hidden\" name=\"user_code\" value=\"{code}\">{csrf}\
         <button name=\"action\" value=\"approve\">Authorize</button>\
         <button name=\"action\" value=\"deny\">Deny</button></form>",
        code = esc(&code),
        email = esc(&user.email),
    );
    Ok(with_cookie(
        page(200, "Authorize a device", Some(&user), &body),
        cookie,
    ))
}

pub(crate) fn device_decide(
    state: &State,
    req: &Request,
    _: &[String],
) -> Result<Response, ApiError> {
    let form = match checked_form(req) {
        Ok(f) => f,
        Err(refused) => return Ok(refused),
    };
    let code = normalize_user_code(field(&form, "user_code").unwrap_or(""));
    let Some(user) = session_user(&state.db(), req)? else {
        let back = percent_encode(&format!("/device?user_code={code}"));
        return Ok(redirect(&format!("/login?next={back}")));
    };
    let approve = match field(&form, "action") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Ok(page(
                400,
                "Nothing decided",
                Some(&user),
                "<p>Choose Authorize or Deny.</p>",
            ))
        }
    };
    let conn = state.db();
    let u = Some(&user);
    Ok(match decide(&conn, &code, &user.id, approve)? {
        Decision::Done if approve => page(
            200,
            "Device authorized",
            u,
            &format!("<p>Code <span class=\"code\">{}</span> is authorized. You can return to your terminal.</p>", esc(&code)),
        ),
        Decision::Done => page(200, "Login denied", u, "<p>The login was denied. The CLI will stop waiting.</p>"),
        Decision::NotFound => page(404, "Code not found", u, "<p>No pending login has this code.</p>"),
        Decision::Expired => page(410, "Code expired", u, "<p>This code has expired.</p>"),
    })
}
