//! The browser half of `auth login`: headless Chromium, driven through
//! chromedriver's WebDriver API, opens the URL the waiting CLI printed and
//! clicks Authorize on the platform's /device page: the form post carries the
//! browser's own Origin, CSRF cookie and token, under the page's CSP. And the
//! attacks a browser makes possible (issue 11, item 10): a page on another
//! origin that posts the Authorize form, or frames the page to trick a click.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{platform, PendingLogin, Sandbox};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Kills a helper process when the test ends, pass or fail.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn webdriver(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Value {
    let resp = match body {
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&b).unwrap()),
        None if method == "DELETE" => agent.delete(url).call(),
        None => agent.get(url).call(),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(v["value"].get("error").is_none(), "{method} {url}: {v}");
    v["value"].clone()
}

/// A chromedriver with one headless Chromium session; dropping it ends both.
struct Browser {
    http: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`.
    s: String,
    _profile: tempfile::TempDir,
    _driver: Reaper,
}

impl Browser {
    /// `None` when Chromium or chromedriver is missing (a failure under CI).
    fn start() -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            // .ci/run installs both; on a developer machine without them, say why.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have chromium and chromium-driver (see .ci/run)"
            );
            eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Reaper(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = agent();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let session = webdriver(&http, "POST", &format!("{base}/session"), Some(caps));
        let sid = session["sessionId"].as_str().expect("session id");
        Some(Browser {
            s: format!("{base}/session/{sid}"),
            http,
            _profile: profile,
            _driver: driver,
        })
    }

    fn post(&self, what: &str, body: Value) -> Value {
        webdriver(
            &self.http,
            "POST",
            &format!("{}/{what}", self.s),
            Some(body),
        )
    }

    fn go(&self, url: &str) {
        self.post("url", json!({ "url": url }));
    }

    fn source(&self) -> String {
        let v = webdriver(&self.http, "GET", &format!("{}/source", self.s), None);
        v.as_str().unwrap_or_default().to_owned()
    }

    fn script(&self, js: &str) -> Value {
        self.post("execute/sync", json!({"script": js, "args": []}))
    }

    fn click(&self, css: &str) {
        let el = self.post("element", json!({"using": "css selector", "value": css}));
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned();
        self.post(&format!("element/{id}/click"), json!({}));
    }

    /// Polls (at most 20 s) until the page source contains `text`.
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let src = self.source();
            if src.contains(text) {
                return src;
            }
            assert!(Instant::now() < deadline, "never saw {text:?}:\n{src}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.s).call();
    }
}

#[test]
fn chromium_authorizes_a_waiting_login() {
    let Some(b) = Browser::start() else { return };
    let p = platform();
    let sb = Sandbox::new();
    let login =
        PendingLogin::start(sb.cmd(&["auth", "login", "--no-browser", "--endpoint", &p.url()]));
    b.go(&login.url);
    b.wait_for(&login.code);
    // The page's one inline style is allowed by its hash in the content
    // policy (a wrong hash would leave the code in the default font).
    let font = b.script("return getComputedStyle(document.querySelector('.code')).fontFamily");
    assert_eq!(font, json!("monospace"), "style blocked by the CSP?");
    b.click("button[value=approve]");
    let r = login.finish();
    r.ok()
        .stdout_has("Successfully authenticated as demo@fluxloop.local");
    sb.cmd(&["auth", "status"]).run().ok().stdout_has("✓ valid");
}

/// An attacker's web server on another loopback port (a sibling origin:
/// same site, so Chromium sends our SameSite cookie along): `/post` submits
/// the Authorize form for `code` on load, `/frame` frames the device page.
struct Attacker {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Attacker {
    fn start(target: &str, code: &str) -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let post = format!(
            "<!doctype html><form method=post action=\"{target}/device\">\
             <input name=user_code value=\"{code}\"><input name=action value=approve>\
             <input name=csrf value=guess></form><script>document.forms[0].submit()</script>"
        );
        let frame =
            format!("<!doctype html><iframe src=\"{target}/device?user_code={code}\"></iframe>");
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let page = if buf[..n].starts_with(b"GET /frame") {
                    &frame
                } else {
                    &post
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Attacker { url, stop }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn issue11_chromium_cannot_be_made_to_authorize_from_another_origin() {
    let Some(b) = Browser::start() else { return };
    let p = platform();
    let sb = Sandbox::new();
    let login =
        PendingLogin::start(sb.cmd(&["auth", "login", "--no-browser", "--endpoint", &p.url()]));
    // The victim has the real page open, so the browser holds its CSRF cookie.
    b.go(&login.url);
    b.wait_for(&login.code);
    let evil = Attacker::start(&p.url(), &login.code);
    // A cross-origin page frames the device page to trick a click: Chromium
    // refuses to render it (X-Frame-Options, frame-ancestors).
    b.go(&format!("{}/frame", evil.url));
    b.wait_for("<iframe");
    b.post("frame", json!({"id": 0}));
    let framed = b.source();
    assert!(
        !framed.contains(&login.code),
        "the device page rendered in a foreign frame:\n{framed}"
    );
    b.post("frame/parent", json!({}));
    // A cross-origin page posts the form: Chromium sends the cookie and its
    // own Origin; the platform refuses and decides nothing.
    b.go(&format!("{}/post", evil.url));
    b.wait_for("Request refused");
    b.go(&login.url);
    b.wait_for("button");
    // Still pending: the real page can still decide it.
    b.go(&login.url);
    b.wait_for(&login.code);
    b.click("button[value=deny]");
    let r = login.finish();
    r.code(3);
}
