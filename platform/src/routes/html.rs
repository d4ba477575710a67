//! What every page shares: the frame (title, who is signed in), the one
//! stylesheet and script (inline, allowed by hash in the content policy),
//! redirects, the session check, and reading and checking form posts.

use crate::accounts::{session_user, User};
use crate::http::{ApiError, Request, Response};
use crate::store::State;
use crate::util::{html_escape as esc, parse_form};

/// The one stylesheet, inline; the content policy allows exactly its hash.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
.code{font-size:2rem;font-family:monospace;letter-spacing:.2rem}button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}\
pre{white-space:pre-wrap;margin:0}.muted{color:#595959}label{display:block;margin:.5rem 0}input,select{font-size:1rem;padding:.3rem}\
.passed{color:#1a6e1a;font-weight:bold}.failed{color:#b00020;font-weight:bold}.key{width:100%;font-family:monospace}\
.notice{border:2px solid #b36b00;padding:.5rem 1rem;margin:1rem 0}.error{color:#b00020}nav form{display:inline}";

/// The one script, inline: copy buttons (`data-copy` names the input whose
/// value to copy). The content policy allows exactly its hash.
pub(crate) const SCRIPT: &str = "document.querySelectorAll('[data-copy]').forEach(function(b){b.addEventListener('click',function(){\
var i=document.getElementById(b.dataset.copy);i.select();if(navigator.clipboard){navigator.clipboard.writeText(i.value)}\
else{document.execCommand('copy')}b.textContent='Copied'})});";

/// A page in the common frame.
pub(crate) fn page(status: u16, title: &str, user: Option<&User>, body: &str) -> Response {
    let who = match user {
        Some(u) => format!(
            " · signed in as {} · <a href=\"/logout\">Sign out</a>",
            esc(&u.email)
        ),
        None => " · <a href=\"/login\">Sign in</a>".to_owned(),
    };
    Response::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · FluxLoop local platform</title>\
             <style>{STYLE}</style></head><body><nav class=\"muted\"><a href=\"/\">FluxLoop local platform</a>{who}</nav>\
             <main><h1>{t}</h1>{body}</main><script>{SCRIPT}</script></body></html>",
            t = esc(title),
        ),
    )
}

/// `303 See Other` to a path of ours.
pub(crate) fn redirect(location: &str) -> Response {
    page(
        303,
        "Moved",
        None,
        &format!("<p><a href=\"{0}\">{0}</a></p>", esc(location)),
    )
    .with_header("Location", location.to_owned())
}

/// The signed-in user, or the redirect to `/login` that comes back here.
pub(crate) fn signed_in(state: &State, req: &Request) -> Result<Result<User, Response>, ApiError> {
    let conn = state.db();
    if let Some(u) = session_user(&conn, req)? {
        return Ok(Ok(u));
    }
    let here = match req.query.is_empty() {
        true => req.path.clone(),
        false => format!("{}?{}", req.path, encode_query(&req.query)),
    };
    Ok(Err(redirect(&format!(
        "/login?next={}",
        percent_encode(&here)
    ))))
}

/// A posted form, checked against cross-site use (`guard::Csrf`): the fields,
/// or the refusal page.
pub(crate) fn checked_form(req: &Request) -> Result<Vec<(String, String)>, Response> {
    let form = parse_form(&String::from_utf8_lossy(&req.body));
    match req.csrf.verify(req, field(&form, "csrf")) {
        Ok(()) => Ok(form),
        Err(why) => Err(page(
            403,
            "Request refused",
            None,
            &format!(
                "<p>Nothing was changed: {}.</p><p>Go back to the page, reload it, and use its buttons.</p>",
                esc(&why)
            ),
        )),
    }
}

/// The first value of a form field.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The hidden CSRF field for a form on a page answering `req`, and the
/// cookie to set when the browser has none yet.
pub(crate) fn csrf_field(req: &Request) -> (String, Option<String>) {
    let (token, cookie) = req.csrf.issue(req);
    (
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            esc(&token)
        ),
        cookie,
    )
}

/// Adds the CSRF cookie when one was issued.
pub(crate) fn with_cookie(r: Response, cookie: Option<String>) -> Response {
    match cookie {
        Some(c) => r.with_header("Set-Cookie", c),
        None => r,
    }
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(q: &[(String, String)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `next` if it is a path on this server (never `//host` or a URL), else `/`.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}
