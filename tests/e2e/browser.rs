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

use base64::Engine as _;
use serde_json::{json, Value};

use crate::fixtures::{fast, ECHO_OK};
use crate::util::{platform, CheckedPlatform, PendingLogin, Sandbox};

/// A platform whose demo user signs in with [`PASSWORD`].
fn web_platform() -> CheckedPlatform {
    let p = platform();
    p.store()
        .set_password("demo@fluxloop.local", PASSWORD)
        .unwrap();
    p
}

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// axe-core as `npm install -g axe-core` puts it, under `npm root -g`.
const AXE: &str = "axe-core/axe.min.js";
/// The password the tests give the demo user.
const PASSWORD: &str = "correct-horse-battery";

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
    /// A fresh browser. The tests that use one are `#[ignore]`d by a plain
    /// `cargo test`; .ci/run passes `--include-ignored`, and then a missing
    /// browser fails the test.
    fn start() -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMIUM} or {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver)"
        );
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
        Browser {
            s: format!("{base}/session/{sid}"),
            http,
            _profile: profile,
            _driver: driver,
        }
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

    fn element(&self, css: &str) -> String {
        let el = self.post("element", json!({"using": "css selector", "value": css}));
        el.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.post(&format!("element/{id}/click"), json!({}));
    }

    /// Types `text` into the field `css`.
    fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.post(&format!("element/{id}/clear"), json!({}));
        self.post(&format!("element/{id}/value"), json!({ "text": text }));
    }

    /// Signs in on the login page the browser is on (or was sent to).
    fn sign_in(&self, email: &str, password: &str) {
        self.wait_for("<h1>Sign in</h1>");
        self.fill("input[name=email]", email);
        self.fill("input[name=password]", password);
        self.click("form[action='/login'] button");
    }

    /// Saves a screenshot of the page as `NAME.png` among the test artifacts
    /// (`target/tmp/browser/`).
    fn shot(&self, name: &str) {
        let v = webdriver(&self.http, "GET", &format!("{}/screenshot", self.s), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs axe-core (from npm) in the page; panics on any serious or
    /// critical accessibility violation.
    #[track_caller]
    fn assert_accessible(&self, what: &str) {
        let root = Command::new("npm")
            .args(["root", "-g"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let path = Path::new(&root).join(AXE);
        let axe = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (npm install -g axe-core)", path.display()));
        self.script(&format!("{axe}\nreturn true;"));
        let found = self.post(
            "execute/async",
            json!({"script": "var done = arguments[arguments.length - 1];\
                axe.run(document).then(function (r) { if (r.passes.length === 0) { done(['axe checked nothing']); return; } done(r.violations\
                  .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })\
                  .map(function (v) { return v.id + ': ' + v.help + ' ' + v.nodes.map(function (n) { return n.html; }).join(' | '); })); },\
                  function (e) { done(['axe failed: ' + e]); });", "args": []}),
        );
        assert_eq!(found, json!([]), "{what}: accessibility violations");
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
#[ignore = "needs chromium and chromium-driver"]
fn chromium_authorizes_a_waiting_login() {
    let b = Browser::start();
    let p = web_platform();
    let sb = Sandbox::new();
    let login =
        PendingLogin::start(sb.cmd(&["auth", "login", "--no-browser", "--endpoint", &p.url()]));
    // Signed out, the link goes through the login page and back.
    b.go(&login.url);
    b.sign_in("demo@fluxloop.local", PASSWORD);
    b.wait_for(&login.code);
    b.wait_for("act as <b>demo@fluxloop.local</b> with <b>admin</b>");
    b.shot("device");
    b.assert_accessible("/device");
    // The page's one inline style is allowed by its hash in the content
    // policy (a wrong hash would leave the code in the default font).
    let font = b.script("return getComputedStyle(document.querySelector('.code')).fontFamily");
    assert_eq!(font, json!("monospace"), "style blocked by the CSP?");
    b.click("button[value=approve]");
    let r = login.finish();
    r.ok()
        // substring: the profile line (random port, sandbox path) is compared exactly by auth::device_login_stores_the_tokens_and_status_shows_them
        .stdout_has("Successfully authenticated as demo@fluxloop.local");
    // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
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
#[ignore = "needs chromium and chromium-driver"]
fn issue11_chromium_cannot_be_made_to_authorize_from_another_origin() {
    let b = Browser::start();
    let p = web_platform();
    let sb = Sandbox::new();
    let login =
        PendingLogin::start(sb.cmd(&["auth", "login", "--no-browser", "--endpoint", &p.url()]));
    // The victim is signed in with the real page open, so the browser holds
    // its session and CSRF cookies.
    b.go(&login.url);
    b.sign_in("demo@fluxloop.local", PASSWORD);
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

/// The text of the key table's row for the key named `name`.
fn key_row(b: &Browser, name: &str) -> String {
    let js = format!(
        "return Array.from(document.querySelectorAll('tr')).map(function (r) {{ return r.innerText; }})\
         .filter(function (t) {{ return t.indexOf({name:?}) === 0; }}).join('\\n');"
    );
    b.script(&js).as_str().unwrap_or_default().to_owned()
}

/// The usage count in a key row (the 8th cell).
fn usage(row: &str) -> i64 {
    row.split('\t')
        .nth(7)
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(-1)
}

#[test]
#[ignore = "needs chromium and chromium-driver"]
fn issue15_the_seeds_web_steps_in_chromium() {
    let b = Browser::start();
    let p = web_platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    let url = p.url();
    // A wrong password.
    b.go(&format!("{url}/login"));
    b.assert_accessible("/login");
    b.sign_in("demo@fluxloop.local", "not-the-password");
    b.wait_for("Wrong email or password.");
    b.shot("login-wrong-password");
    b.sign_in("demo@fluxloop.local", PASSWORD);
    b.wait_for("signed in as demo@fluxloop.local");
    b.shot("index");
    b.assert_accessible("/");
    // Create API Key -> Name -> Scope -> Create -> Copy key (shown once!).
    b.go(&format!("{url}/settings/api-keys"));
    b.fill("input[name=name]", "browser key");
    b.click("form[action='/settings/api-keys'] button");
    b.wait_for("you won't see it again");
    b.shot("key-created");
    b.assert_accessible("/settings/api-keys after create");
    let key = b.script("return document.getElementById('new-key').value");
    let key = key.as_str().expect("key").to_owned();
    assert!(key.starts_with("flx_api_"), "{key}");
    b.click("[data-copy=new-key]");
    assert_eq!(
        b.script("return document.querySelector('[data-copy=new-key]').textContent"),
        json!("Copied")
    );
    // Use it from the CLI; its usage count rises on reload.
    let cli = |args: &[&str]| {
        fast(sb.cmd(args))
            .env("FLUXLOOP_API_KEY", &key)
            .env("FLUXLOOP_API_ENDPOINT", &url)
            .run()
    };
    cli(&["sync", "pull", "--scenario", "support-bot", "--yes"]).ok();
    b.go(&format!("{url}/settings/api-keys"));
    let before = usage(&key_row(&b, "browser key"));
    assert!(before >= 1, "{}", key_row(&b, "browser key"));
    assert!(!b.source().contains(&key), "the key is shown only once");
    cli(&[
        "test",
        "--scenario",
        "support-bot",
        "--skip-pull",
        "--",
        "echo",
        ECHO_OK,
    ])
    .ok();
    b.go(&format!("{url}/settings/api-keys"));
    let after = usage(&key_row(&b, "browser key"));
    assert!(after > before, "usage {before} -> {after}");
    b.shot("keys-usage");
    // The upload's batch, from the list.
    b.go(&format!("{url}/run-batches"));
    b.assert_accessible("/run-batches");
    b.shot("run-batches");
    b.click("td a[href^='/run-batches/']");
    b.wait_for("<h1>Run batch</h1>");
    b.assert_accessible("/run-batches/{id}");
    b.shot("run-batch");
    // A post without the CSRF token, made by a script in the page, is refused.
    b.go(&format!("{url}/settings/api-keys"));
    b.script(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/settings/api-keys/revoke';\
         var i = document.createElement('input'); i.name = 'id'; i.value = 'x'; f.appendChild(i);\
         document.body.appendChild(f); f.submit(); return true;",
    );
    b.wait_for("<h1>Request refused</h1>");
    b.shot("csrf-refused");
    // Revoke it in the page, with a confirmation; the CLI gets `key revoked`.
    b.go(&format!("{url}/settings/api-keys"));
    b.script(
        "var rows = Array.from(document.querySelectorAll('tr')).filter(function (r) { return r.innerText.indexOf('browser key') === 0; });\
         rows[0].querySelector('form button').click(); return true;",
    );
    b.wait_for("Revoke the key <b>browser key</b>?");
    b.shot("revoke-confirm");
    b.click("form[action='/settings/api-keys/revoke'] button");
    b.wait_for("Revoked <b>browser key</b>.");
    let r = cli(&["sync", "pull", "--scenario", "support-bot", "--yes"]);
    // substring: the message names the key's origin; the revocation is what this test is about
    r.code(3).stderr_has("key revoked");
}

/// The cells of each row of the keys page's trust policy table, below its
/// header row.
fn policy_rows(b: &Browser) -> Value {
    b.script(
        "var h = Array.from(document.querySelectorAll('h2')).find(function (e) { return e.textContent === 'Trust policies'; });\
         var t = h; while (t && t.tagName !== 'TABLE') { t = t.nextElementSibling; }\
         return Array.from(t.querySelectorAll('tr')).slice(1).map(function (r) {\
           return Array.from(r.cells).map(function (c) { return c.innerText; }); });",
    )
}

/// A JSON request to the platform (with `bearer` unless empty), answered
/// with `status`; its body.
#[track_caller]
fn api(url: &str, bearer: &str, body: Option<Value>, status: u16) -> Value {
    let http = agent();
    let auth = format!("Bearer {bearer}");
    let reply = match body {
        Some(b) => {
            let mut req = http.post(url).header("Content-Type", "application/json");
            if !bearer.is_empty() {
                req = req.header("Authorization", &auth);
            }
            req.send(serde_json::to_vec(&b).unwrap())
        }
        None => http.get(url).header("Authorization", &auth).call(),
    };
    let mut reply = reply.unwrap_or_else(|e| panic!("{url}: {e}"));
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(reply.status().as_u16(), status, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Issue 19, item 7: a policy added through the API shows on the keys page
/// with what it trusts, and every use of it (the exchange, then each request
/// made with the token it issued) moves its count and last-used time.
#[test]
#[ignore = "needs chromium and chromium-driver"]
fn issue19_the_keys_page_shows_a_trust_policy_and_its_uses() {
    use fluxloop_testkit::oidc::Issuer;
    let b = Browser::start();
    let p = web_platform();
    let demo = p.seed_demo().unwrap();
    let issuer = Issuer::start();
    let url = p.url();
    let admin = p
        .create_key(&demo.project_id, "trust admin", "user", "admin")
        .unwrap()
        .key;
    let policies = format!("{url}/api/projects/{}/trust-policies", demo.project_id);
    let conditions = json!({"sub": "repo:org/app:ref:refs/heads/*", "ref": "refs/heads/main"});
    let body = json!({"issuer": issuer.url(), "conditions": conditions, "scope": "read-write", "name": "ci main"});
    api(&policies, &admin, Some(body), 201);
    let conditions_text = "ref=refs/heads/main, sub=repo:org/app:ref:refs/heads/*";
    let row = |last_used: &str, uses: &str| {
        json!([[
            "ci main",
            issuer.url(),
            conditions_text,
            "read-write",
            last_used,
            uses
        ]])
    };
    b.go(&format!("{url}/settings/api-keys"));
    b.sign_in("demo@fluxloop.local", PASSWORD);
    b.wait_for("<h2>Trust policies</h2>");
    assert_eq!(policy_rows(&b), row("—", "0"));
    b.assert_accessible("/settings/api-keys with a trust policy");
    let last_used = || {
        let listed = api(&policies, &admin, None, 200);
        listed["trust_policies"][0]["last_used_at"]
            .as_str()
            .expect("used")
            .to_owned()
    };
    let id_token = issuer.mint(json!({"sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"}));
    let exchange = format!("{url}/api/auth/oidc/exchange");
    let grant = api(&exchange, "", Some(json!({ "token": id_token })), 200);
    let access = grant["access_token"].as_str().expect("access token");
    b.go(&format!("{url}/settings/api-keys"));
    b.wait_for("<h2>Trust policies</h2>");
    assert_eq!(policy_rows(&b), row(&last_used(), "1"));
    let me = api(&format!("{url}/api/api-keys/self"), access, None, 200);
    assert_eq!(me["key_type"], json!("oidc"), "{me}");
    b.go(&format!("{url}/settings/api-keys"));
    b.wait_for("<h2>Trust policies</h2>");
    assert_eq!(policy_rows(&b), row(&last_used(), "2"));
    b.script(
        "Array.from(document.querySelectorAll('h2')).find(function (e) { return e.textContent === 'Trust policies'; }).scrollIntoView(); return true;",
    );
    b.shot("keys-trust-policy");
    let page = b.source();
    assert!(
        !page.contains(access) && !page.contains(&id_token),
        "neither token is ever shown"
    );
}
