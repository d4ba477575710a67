//! The browser half of `auth login`: headless Chromium, driven through
//! chromedriver's WebDriver API, opens the URL the waiting CLI printed and
//! clicks Authorize on the platform's /device page.

use std::path::Path;
use std::process::{Child, Command, Stdio};
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

// Ignored by a plain `cargo test`; .ci/run passes --include-ignored, and then
// missing browsers fail the test.
#[test]
#[ignore = "needs chromium and chromium-driver"]
fn chromium_authorizes_a_waiting_login() {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "{CHROMIUM} or {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver)"
    );
    let p = platform();
    let sb = Sandbox::new();

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _driver = Reaper(
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

    let login =
        PendingLogin::start(sb.cmd(&["auth", "login", "--no-browser", "--endpoint", &p.url()]));
    let url = login.url.clone();

    let profile_dir = tempfile::tempdir().unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                format!("--user-data-dir={}", profile_dir.path().display()),
            ]
        }
    }}});
    let session = webdriver(&http, "POST", &format!("{base}/session"), Some(caps));
    let sid = session["sessionId"]
        .as_str()
        .expect("session id")
        .to_string();
    let s = format!("{base}/session/{sid}");
    webdriver(
        &http,
        "POST",
        &format!("{s}/url"),
        Some(json!({ "url": url })),
    );
    let title = webdriver(&http, "GET", &format!("{s}/source"), None);
    let code = url.split("user_code=").nth(1).unwrap();
    assert!(
        title.as_str().unwrap_or("").contains(code),
        "the page shows the code"
    );
    let button = webdriver(
        &http,
        "POST",
        &format!("{s}/element"),
        Some(json!({"using": "css selector", "value": "button[value=approve]"})),
    );
    let id = button
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("Authorize button")
        .to_string();
    webdriver(
        &http,
        "POST",
        &format!("{s}/element/{id}/click"),
        Some(json!({})),
    );

    let r = login.finish();
    webdriver(&http, "DELETE", &s, None);
    r.ok()
        .stdout_has("Successfully authenticated as demo@fluxloop.local");
    sb.cmd(&["auth", "status"]).run().ok().stdout_has("✓ valid");
}
