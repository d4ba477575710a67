//! Issue 11, platform items 9–12, each carried out as an attack over HTTP on
//! 127.0.0.1: DNS rebinding (a foreign `Host`), cross-site form posts and
//! framing, refresh-token reuse, and logout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use fluxloop_platform::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Env, Reply};

/// The exact JSON error body of a refused `Host`.
fn misdirected(host: &str, port: u16) -> String {
    json!({"error": {"code": "misdirected_request", "message": format!(
        "the Host header `{host}` does not name this server; address it as 127.0.0.1:{port}, \
         localhost:{port} or [::1]:{port}, or start it with --public-url")}})
    .to_string()
}

/// The exact page of a refused `Host`.
fn misdirected_page(port: u16) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Wrong address</title></head>\
         <body><h1>Wrong address</h1><p>This server does not answer to the name in this request. \
         Open it at <code>http://127.0.0.1:{port}/</code>.</p></body></html>"
    )
}

#[test]
fn issue11_dns_rebinding_a_foreign_host_reaches_no_route() {
    let e = Env::new();
    let demo = e.demo();
    let port = e.p.addr().port();
    let uses = |e: &Env| {
        e.get("/api/api-keys/self")
            .auth(&demo.key)
            .send()
            .expect(200)
            .json()["usage_count"]
            .as_i64()
            .expect("usage_count")
    };
    let before = uses(&e);
    let foreign = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("127.1.2.3:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("localhost.:{port}"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        String::new(),
    ];
    for host in &foreign {
        for path in ["/api/health", "/api/projects", "/api/api-keys/self"] {
            let r = e
                .get(path)
                .auth(&demo.key)
                .header("Host", host)
                .send()
                .expect(421);
            assert_eq!(r.text, misdirected(host, port), "{path} with Host {host:?}");
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        for path in ["/", "/device", "/settings/api-keys"] {
            let r = e.get(path).header("Host", host).send().expect(421);
            assert_eq!(r.text, misdirected_page(port), "{path} with Host {host:?}");
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
        }
        let r = e
            .post("/device")
            .header("Host", host)
            .header("Origin", &format!("http://{host}"))
            .raw("user_code=X&action=approve")
            .send()
            .expect(421);
        assert_eq!(r.text, misdirected_page(port));
    }
    // No refused request ran a route: the key was not even counted as used
    // (the one extra use is the check itself).
    assert_eq!(uses(&e), before + 1);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        e.get("/api/projects")
            .auth(&demo.key)
            .header("Host", &host)
            .send()
            .expect(200);
        e.get("/login").header("Host", &host).send().expect(200);
    }
}

#[test]
fn issue11_dns_rebinding_a_request_without_host_is_refused() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    s.write_all(b"GET /api/health HTTP/1.0\r\n\r\n")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    // HTTP/1.0 in: the answer may name either version.
    assert!(
        text.starts_with("HTTP/1.0 400 ") || text.starts_with("HTTP/1.1 400 "),
        "{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        body,
        r#"{"error":{"code":"invalid_request","message":"a Host header is required"}}"#
    );
}

#[test]
fn issue11_dns_rebinding_public_url_hosts_are_the_only_extra_names() {
    let e = Env::with(Config {
        public_urls: vec!["https://Flux.Example.test/".to_owned()],
        ..Config::default()
    });
    e.demo();
    let start = e
        .post("/api/cli-connect/start")
        .header("Host", "flux.example.test")
        .send()
        .expect(200)
        .json();
    // Links handed out name the public URL, scheme included.
    let code = start["user_code"].as_str().expect("user_code");
    assert_eq!(
        start["verification_url"],
        format!("https://flux.example.test/device?user_code={code}").as_str()
    );
    e.get("/login")
        .header("Host", "flux.example.test:443")
        .send()
        .expect(200);
    for host in ["flux.example.test:8443", "example.test", "evil.example"] {
        e.get("/api/health").header("Host", host).send().expect(421);
    }
    for bad in [
        "ftp://x.example",
        "https://user@x.example",
        "https://x.example/path",
        "https://x.example?q",
        "https://",
        "x.example",
    ] {
        let r = fluxloop_platform::Platform::start(Config {
            public_urls: vec![bad.to_owned()],
            ..Config::default()
        });
        assert!(r.is_err(), "{bad} accepted");
    }
}

/// The device page of a pending login, seen by the signed-in `session`
/// (a `flx_session=` pair) with the CSRF `cookie` if the browser has one:
/// (page reply, CSRF cookie pair, form token).
pub(crate) fn device_page(
    e: &Env,
    session: &str,
    code: &str,
    cookie: Option<&str>,
) -> (Reply, String, String) {
    let jar = match cookie {
        Some(c) => format!("{c}; {session}"),
        None => session.to_owned(),
    };
    let r = e
        .get(&format!("/device?user_code={code}"))
        .header("Cookie", &jar)
        .send()
        .expect(200);
    let token = r
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("hidden csrf field")
        .to_owned();
    let pair = match cookie {
        Some(c) => {
            assert_eq!(r.header("set-cookie"), None, "a session keeps its cookie");
            c.to_owned()
        }
        None => {
            let set = r.header("set-cookie").expect("set-cookie").to_owned();
            let (pair, attrs) = set.split_once("; ").expect("cookie attributes");
            assert_eq!(attrs, "Path=/; HttpOnly; SameSite=Strict");
            assert!(pair.starts_with("flx_csrf="), "{set}");
            pair.to_owned()
        }
    };
    (r, pair, token)
}

/// Headers every page carries; the style hash must be that of its `<style>`.
#[track_caller]
fn assert_page_headers(r: &Reply) {
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let style = r
        .text
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .expect("style element");
    let script = r
        .text
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .expect("script element");
    let hash =
        |t: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(t.as_bytes()));
    assert_eq!(
        r.header("content-security-policy"),
        Some(
            format!(
                "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                hash(style),
                hash(script)
            )
            .as_str()
        )
    );
}

#[test]
fn issue11_cross_site_device_posts_need_origin_and_the_session_token() {
    let e = Env::new();
    e.demo();
    let start = e.post("/api/cli-connect/start").send().expect(200).json();
    let code = start["user_code"].as_str().expect("user_code").to_owned();
    let poll = || {
        e.post("/api/cli-connect/complete")
            .json(&json!({"device_code": start["device_code"]}))
            .send()
            .expect(200)
            .json()["status"]
            .clone()
    };
    let session = e.sign_in();
    let (page, cookie, token) = device_page(&e, &session, &code, None);
    assert_page_headers(&page);
    // The same session gets the same token; another session another one.
    let (_, _, again) = device_page(&e, &session, &code, Some(&cookie));
    assert_eq!(again, token);
    let (_, other_cookie, other_token) = device_page(&e, &session, &code, None);
    assert_ne!(other_token, token);
    let own = e.p.url();
    let form = |t: &str| format!("user_code={code}&action=approve&csrf={t}");
    let attacks: Vec<(&str, Option<&str>, Option<&str>, String)> = vec![
        ("no Origin", None, Some(&cookie), form(&token)),
        ("Origin null", Some("null"), Some(&cookie), form(&token)),
        (
            "foreign Origin",
            Some("http://evil.example"),
            Some(&cookie),
            form(&token),
        ),
        ("no cookie", Some(&own), None, form(&token)),
        (
            "no token",
            Some(&own),
            Some(&cookie),
            format!("user_code={code}&action=approve"),
        ),
        (
            "another session's token",
            Some(&own),
            Some(&cookie),
            form(&other_token),
        ),
        (
            "token of a forged cookie",
            Some(&own),
            Some("flx_csrf=aaaa"),
            form("aaaa"),
        ),
        (
            "cookie value as token",
            Some(&own),
            Some(&other_cookie),
            form(other_cookie.trim_start_matches("flx_csrf=")),
        ),
    ];
    for (what, origin, cookie, body) in attacks {
        let mut call = e
            .post("/device")
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            call = call.header("Origin", o);
        }
        let jar = match cookie {
            Some(c) => format!("{c}; {session}"),
            None => session.clone(),
        };
        let r = call.header("Cookie", &jar).raw(&body).send().expect(403);
        assert!(
            r.text.contains("<h1>Request refused</h1>"),
            "{what}: {}",
            r.text
        );
        assert_page_headers(&r);
        assert_eq!(poll(), "pending", "{what} decided the login");
    }
    let r = e
        .post("/device")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &own)
        .header("Cookie", &format!("theme=dark; {cookie}; {session}"))
        .raw(&form(&token))
        .send()
        .expect(200);
    assert!(r.text.contains("is authorized"), "{}", r.text);
    assert_eq!(poll(), "approved");
}

#[test]
fn issue11_every_page_forbids_framing_and_foreign_content() {
    let e = Env::new();
    let demo = e.demo();
    let batch = {
        let body = e.upload_body(&demo, &demo.key, 1);
        e.post("/api/sync/upload")
            .auth(&demo.key)
            .json(&body)
            .send()
            .expect(200)
            .json()["run_batch_id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let session = e.sign_in();
    for path in [
        "/".to_owned(),
        "/login".to_owned(),
        "/logout".to_owned(),
        "/run-batches".to_owned(),
        "/device".to_owned(),
        "/device?user_code=NOPE-NOPE".to_owned(),
        "/settings/api-keys".to_owned(),
        format!("/run-batches/{batch}"),
    ] {
        let r = e.get(&path).header("Cookie", &session).send();
        // 303: /login sends a signed-in browser on.
        assert!([200, 303, 404].contains(&r.status), "{path}: {}", r.status);
        assert_page_headers(&r);
    }
}

/// Refreshes; returns the new credential.
fn refresh(e: &Env, token: &str) -> Value {
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .expect(200)
        .json()["credential"]
        .clone()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

#[test]
fn issue11_a_reused_refresh_token_revokes_every_token_of_the_login() {
    let e = Env::new();
    e.demo();
    let first = e.login();
    let bystander = e.login();
    let second = refresh(&e, &s(&first, "refresh_token"));
    let third = refresh(&e, &s(&second, "refresh_token"));
    for c in [&first, &second, &third] {
        e.get("/api/projects")
            .auth(&s(c, "access_token"))
            .send()
            .expect(200);
    }
    // The thief (or the victim) presents the rotated-away token.
    let r = e
        .post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": s(&first, "refresh_token")}))
        .send()
        .expect(401);
    assert_eq!(
        r.text,
        r#"{"error":{"code":"unauthenticated","message":"refresh token was already used; every token of this login is revoked"}}"#
    );
    for c in [&first, &second, &third] {
        e.get("/api/projects")
            .auth(&s(c, "access_token"))
            .send()
            .expect_error(401, "unauthenticated");
    }
    for t in [s(&third, "refresh_token"), s(&second, "refresh_token")] {
        e.post("/api/cli-connect/refresh")
            .json(&json!({"refresh_token": t}))
            .send()
            .expect_error(401, "unauthenticated");
    }
    // Another login of the same user is its own family and lives on.
    e.get("/api/projects")
        .auth(&s(&bystander, "access_token"))
        .send()
        .expect(200);
    refresh(&e, &s(&bystander, "refresh_token"));
}

#[test]
fn issue11_logout_ends_the_whole_login_at_once() {
    let e = Env::new();
    let demo = e.demo();
    let first = e.login();
    let bystander = e.login();
    let second = refresh(&e, &s(&first, "refresh_token"));
    let access = s(&second, "access_token");
    let r = e
        .post("/api/cli-connect/logout")
        .auth(&access)
        .json(&json!({"refresh_token": s(&second, "refresh_token")}))
        .send()
        .expect(200);
    assert_eq!(r.text, r#"{"status":"logged_out"}"#);
    for a in [access.clone(), s(&first, "access_token")] {
        e.get("/api/projects")
            .auth(&a)
            .send()
            .expect_error(401, "unauthenticated");
    }
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": s(&second, "refresh_token")}))
        .send()
        .expect_error(401, "unauthenticated");
    // Logging out again with the dead token, or with a made-up one: 401.
    for t in [access.as_str(), "flx_at_nope"] {
        e.post("/api/cli-connect/logout")
            .auth(t)
            .send()
            .expect_error(401, "unauthenticated");
    }
    e.post("/api/cli-connect/logout")
        .send()
        .expect_error(401, "unauthenticated");
    // An API key is not a login.
    let r = e
        .post("/api/cli-connect/logout")
        .auth(&demo.key)
        .json(&json!({}))
        .send()
        .expect(400);
    assert_eq!(
        r.text,
        r#"{"error":{"code":"invalid_request","message":"logout ends a login; revoke a key with POST /api/api-keys/revoke"}}"#
    );
    e.get("/api/projects").auth(&demo.key).send().expect(200);
    // Without a body, with only the access token: the other login lives on
    // until it logs out itself.
    e.get("/api/projects")
        .auth(&s(&bystander, "access_token"))
        .send()
        .expect(200);
    e.post("/api/cli-connect/logout")
        .auth(&s(&bystander, "access_token"))
        .send()
        .expect(200);
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": s(&bystander, "refresh_token")}))
        .send()
        .expect_error(401, "unauthenticated");
}

#[test]
fn issue11_logout_with_an_expired_access_token_is_refused() {
    let e = Env::with(Config {
        access_token_ttl: Duration::from_secs(1),
        ..Config::default()
    });
    e.demo();
    let cred = e.login();
    std::thread::sleep(Duration::from_millis(1100));
    e.post("/api/cli-connect/logout")
        .auth(&s(&cred, "access_token"))
        .send()
        .expect_error(401, "token_expired");
}
