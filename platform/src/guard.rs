//! What a request must show before any route runs, and what every answer
//! carries, whatever HTTP crate serves it:
//! - [`Hosts`]: the `Host` allow-list against DNS rebinding. A page on
//!   `evil.example` whose name is rebound to 127.0.0.1 reaches this server
//!   with `Host: evil.example`; only our own names are answered.
//! - [`Csrf`]: the token of state-changing form posts, bound to a cookie.
//! - [`page_headers`]: framing and content policy of HTML answers.

use std::net::SocketAddr;
use std::sync::RwLock;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::{ApiError, Request};
use crate::PlatformError;

/// Name of the cookie that carries a browser's CSRF session.
const CSRF_COOKIE: &str = "flx_csrf";
/// Random characters of a CSRF session id.
const CSRF_SESSION_LEN: usize = 43;

/// One name this server answers to: the `Host` value (lower case, default
/// port left out) and the origin links are built from.
#[derive(Debug, Clone)]
struct Name {
    scheme: String,
    authority: String,
    origin: String,
}

/// The names this server answers to: its listening address, the loopback
/// names with its port, and the `--public-url` hosts.
#[derive(Debug)]
pub(crate) struct Hosts {
    port: u16,
    names: RwLock<Vec<Name>>,
}

impl Hosts {
    /// The names of a server listening on `listen`, plus `public_urls`.
    pub(crate) fn new(listen: SocketAddr, public_urls: &[String]) -> Result<Hosts, PlatformError> {
        let port = listen.port();
        let mut names: Vec<Name> = [
            listen.to_string(),
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]
        .into_iter()
        .map(|a| name("http", &a))
        .collect();
        for url in public_urls {
            names.push(parse_public_url(url)?);
        }
        Ok(Hosts {
            port,
            names: RwLock::new(names),
        })
    }

    /// Adds a public URL (a reverse proxy in front of a running server).
    pub(crate) fn add(&self, url: &str) -> Result<(), PlatformError> {
        let n = parse_public_url(url)?;
        self.names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(n);
        Ok(())
    }

    /// The origin (`scheme://host[:port]`) a request addressed, when its
    /// `Host` values (`hosts`, every one sent) name this server.
    pub(crate) fn origin(&self, hosts: &[&str]) -> Result<String, ApiError> {
        let host = match hosts {
            [one] => *one,
            [] => return Err(ApiError::invalid("a Host header is required".to_owned())),
            _ => return Err(ApiError::invalid("more than one Host header".to_owned())),
        };
        let wanted = host.to_ascii_lowercase();
        let names = self
            .names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A name matches with its scheme's default port written or left out,
        // as browsers leave it out.
        let found = names
            .iter()
            .find(|n| strip_default_port(&n.scheme, &wanted) == n.authority);
        match found {
            Some(n) => Ok(n.origin.clone()),
            None => {
                let port = self.port;
                let shown: String = host.chars().take(100).collect();
                Err(ApiError::new(
                    421,
                    "misdirected_request",
                    format!(
                        "the Host header `{shown}` does not name this server; address it as \
                         127.0.0.1:{port}, localhost:{port} or [::1]:{port}, or start it with --public-url"
                    ),
                ))
            }
        }
    }

    /// The page answered instead of a route when [`Hosts::origin`] refuses.
    /// It names nothing from the request: the refused name is the attacker's.
    pub(crate) fn refusal_page(&self, status: u16) -> String {
        let (title, what) = if status == 421 {
            (
                "Wrong address",
                "does not answer to the name in this request",
            )
        } else {
            ("Bad request", "needs exactly one Host header")
        };
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>This server {what}. \
             Open it at <code>http://127.0.0.1:{}/</code>.</p></body></html>",
            self.port
        )
    }
}

/// `host:port` without the port when it is the default of `scheme`.
fn strip_default_port(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_owned()
}

fn name(scheme: &str, authority: &str) -> Name {
    let authority = strip_default_port(scheme, &authority.to_ascii_lowercase());
    Name {
        scheme: scheme.to_owned(),
        origin: format!("{scheme}://{authority}"),
        authority,
    }
}

/// Reads a `--public-url`: `http(s)://host[:port]` with at most a `/` after
/// it. Anything more (a path, a query, user info) would not be a host name
/// this server can be addressed by, so it is refused rather than cut off.
fn parse_public_url(url: &str) -> Result<Name, PlatformError> {
    let invalid = |why: &str| PlatformError::Invalid {
        message: format!(
            "--public-url `{url}` {why}; give it as https://HOST or https://HOST:PORT"
        ),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("has no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("is not http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (bracketed || !host.contains(['[', ']', ':']))
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    if !host_ok {
        return Err(invalid("has no valid host name"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().ok().filter(|&p| p > 0).is_none() {
            return Err(invalid("has an invalid port"));
        }
    }
    Ok(name(&scheme, authority))
}

/// The per-browser CSRF token of form posts: a random session id in an
/// HttpOnly cookie, and in each form the HMAC of that id under a key that
/// lives only in this server. A page elsewhere can neither read the cookie
/// nor compute the token, and a cookie planted from a sibling origin
/// (cookies ignore ports) has no token to go with it.
pub(crate) struct Csrf {
    key: Vec<u8>,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf { key: REDACTED }")
    }
}

impl Csrf {
    /// A new key; tokens of an earlier server run stop working.
    pub(crate) fn new() -> Csrf {
        Csrf {
            key: crate::util::secret("", 64).into_bytes(),
        }
    }

    fn token_for(&self, session: &str) -> String {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(session.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The token for a form on a page answering `req`, and the `Set-Cookie`
    /// value when the browser has no session yet.
    pub(crate) fn issue(&self, req: &Request) -> (String, Option<String>) {
        if let Some(session) = session_of(req) {
            return (self.token_for(&session), None);
        }
        let session = crate::util::secret("", CSRF_SESSION_LEN);
        let secure = if req.base_url().starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!("{CSRF_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{secure}");
        (self.token_for(&session), Some(cookie))
    }

    /// Refuses a form post that is cross-site (`Origin` missing, `null` or
    /// another origin) or lacks the token of its session.
    pub(crate) fn verify(&self, req: &Request, form_token: Option<&str>) -> Result<(), String> {
        match req.header("origin") {
            None => return Err("the browser sent no Origin".to_owned()),
            Some(o) if o.eq_ignore_ascii_case(&req.base_url()) => {}
            Some(_) => return Err("the form was posted from another site".to_owned()),
        }
        let Some(session) = session_of(req) else {
            return Err("this browser has no session cookie".to_owned());
        };
        let want = self.token_for(&session);
        let got = form_token.unwrap_or("");
        if bool::from(want.as_bytes().ct_eq(got.as_bytes())) {
            Ok(())
        } else {
            Err("the form's token does not belong to this browser session".to_owned())
        }
    }
}

/// The CSRF session id from the `Cookie` header, when it is well-formed.
fn session_of(req: &Request) -> Option<String> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == CSRF_SESSION_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Headers of every HTML answer: no framing (clickjacking of Authorize), and
/// a content policy that allows nothing but the pages' own inline style and
/// copy-button script (by hash), so injected markup can load or run nothing.
pub(crate) fn page_headers() -> Vec<(&'static str, String)> {
    let hash = |text: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
    let (style, script) = (hash(crate::routes::STYLE), hash(crate::routes::SCRIPT));
    vec![
        ("X-Frame-Options", "DENY".to_owned()),
        (
            "Content-Security-Policy",
            format!(
                "default-src 'none'; style-src 'sha256-{style}'; script-src 'sha256-{script}'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_bare_origins() {
        let n = parse_public_url("HTTPS://Flux.Example:443/").expect("valid");
        assert_eq!(
            (n.authority.as_str(), n.origin.as_str()),
            ("flux.example", "https://flux.example")
        );
        let n = parse_public_url("http://[::1]:9000").expect("valid");
        assert_eq!(n.authority, "[::1]:9000");
        for bad in [
            "flux.example",
            "https://a@b",
            "https://a/b",
            "https://a:x",
            "https://a:0",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_match_exactly() {
        let h = Hosts::new("127.0.0.1:8787".parse().expect("addr"), &[]).expect("hosts");
        assert!(h.origin(&["127.0.0.1:8787"]).is_ok());
        assert!(h.origin(&["LOCALHOST:8787"]).is_ok());
        assert!(h.origin(&["127.0.0.2:8787"]).is_err());
        assert!(h.origin(&["127.0.0.1:8787", "127.0.0.1:8787"]).is_err());
        assert!(h.origin(&[]).is_err());
    }
}
