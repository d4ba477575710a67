//! Integration tests over real HTTP on 127.0.0.1: every endpoint's happy
//! path, its credential and scope failures, malformed input, the device flow,
//! refresh rotation, idempotent uploads, usage counting, restarts on the same
//! database file, injected faults, the pages, the binary and the OpenAPI
//! document.

mod admin;
mod auth;
mod hardening;
mod oidc;
mod oidc_admin;
mod shards;
mod strict;
mod sync;
mod web;
mod wire;

use std::time::Duration;

use fluxloop_platform::{Config, Demo, Platform};
use serde_json::{json, Value};

/// An answer: status, headers we care about, and the body as text and JSON.
pub(crate) struct Reply {
    status: u16,
    text: String,
    allow: Option<String>,
    retry_after: Option<String>,
    /// Every header, names lower-cased, in the order received.
    headers: Vec<(String, String)>,
}

impl Reply {
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `error.code` of an error body.
    #[track_caller]
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }

    /// Every value of the header `name` (lower case).
    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of the header `name` (lower case); `None` when absent.
    #[track_caller]
    fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.first().copied()
    }

    #[track_caller]
    fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    #[track_caller]
    fn expect_error(self, status: u16, code: &str) -> Reply {
        let r = self.expect(status);
        assert_eq!(r.code(), code, "body: {}", r.text);
        assert!(r.json()["error"]["message"].is_string());
        r
    }
}

/// A request being built.
#[must_use]
pub(crate) struct Call<'a> {
    agent: &'a ureq::Agent,
    method: &'a str,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl Call<'_> {
    fn auth(mut self, token: &str) -> Self {
        self.headers
            .push(("Authorization".into(), format!("Bearer {token}")));
        self
    }
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn json(mut self, v: &Value) -> Self {
        self.body = Some(v.to_string());
        self.header("Content-Type", "application/json")
    }
    fn raw(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }
    fn send(self) -> Reply {
        let mut b = ureq::http::Request::builder()
            .method(self.method)
            .uri(&self.url);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let resp = match self.body {
            Some(body) => self.agent.run(b.body(body).expect("request")),
            None => self.agent.run(b.body(()).expect("request")),
        }
        .expect("transport");
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (allow, retry_after) = (header("allow"), header("retry-after"));
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().expect("body");
        Reply {
            status,
            text,
            allow,
            retry_after,
            headers,
        }
    }
}

/// The demo user, and the password every test platform gives it.
pub(crate) const DEMO_EMAIL: &str = "demo@fluxloop.local";
pub(crate) const DEMO_PASSWORD: &str = "correct-horse-battery";

/// The value of the hidden form field `name` in a page.
#[track_caller]
pub(crate) fn hidden(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("no hidden field {name} in {page}"))
        .to_owned()
}

/// A platform for one test, with an HTTP client.
pub(crate) struct Env {
    p: Platform,
    agent: ureq::Agent,
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

impl Env {
    fn with(config: Config) -> Env {
        let p = Platform::start(config).expect("start platform");
        p.store()
            .set_password(DEMO_EMAIL, DEMO_PASSWORD)
            .expect("demo password");
        Env { p, agent: agent() }
    }
    /// Signs the demo user in through the `/login` form; returns the
    /// session's cookie pair (`flx_session=...`).
    fn sign_in(&self) -> String {
        let form = self.get("/login").send().expect(200);
        let csrf_cookie = form
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("csrf cookie")
            .to_owned();
        let token = hidden(&form.text, "csrf");
        let r = self
            .post("/login")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &self.p.url())
            .header("Cookie", &csrf_cookie)
            .raw(&format!(
                "email=demo%40fluxloop.local&password={DEMO_PASSWORD}&next=%2F&csrf={token}"
            ))
            .send()
            .expect(303);
        let session = r
            .header_all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("flx_session="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_owned();
        session
    }
    fn new() -> Env {
        Env::with(Config {
            poll_interval_secs: 1,
            ..Config::default()
        })
    }
    fn call<'a>(&'a self, method: &'a str, path: &str) -> Call<'a> {
        Call {
            agent: &self.agent,
            method,
            url: format!("{}{path}", self.p.url()),
            headers: Vec::new(),
            body: None,
        }
    }
    fn get(&self, path: &str) -> Call<'_> {
        self.call("GET", path)
    }
    fn post(&self, path: &str) -> Call<'_> {
        self.call("POST", path)
    }
    fn demo(&self) -> Demo {
        self.p.seed_demo().expect("seed demo")
    }
    fn key(&self, demo: &Demo, scope: &str) -> String {
        self.p
            .create_key(&demo.project_id, scope, "service-account", scope)
            .expect("create key")
            .key
    }
    /// Logs in through the device flow; returns the credential object.
    fn login(&self) -> Value {
        let start = self
            .post("/api/cli-connect/start")
            .json(&json!({}))
            .send()
            .expect(200)
            .json();
        let code = start["user_code"].as_str().expect("user_code");
        self.p.approve_device(code).expect("approve");
        let done = self
            .post("/api/cli-connect/complete")
            .json(&json!({"device_code": start["device_code"]}))
            .send()
            .expect(200)
            .json();
        assert_eq!(done["status"], "approved");
        done["credential"].clone()
    }
    /// A small valid upload of the first `n` inputs of the demo bundle.
    fn upload_body(&self, demo: &Demo, key: &str, n: usize) -> Value {
        let pulled = self
            .post("/api/sync/pull")
            .auth(key)
            .json(&json!({}))
            .send()
            .expect(200)
            .json();
        let items = pulled["input_items"].as_array().expect("items").clone();
        let runs: Vec<Value> = items
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, it)| {
                json!({"id": format!("run-{i}"), "input_item_id": it["id"], "persona_id": it["persona_id"],
                       "status": if i == 0 { "failed" } else { "completed" },
                       "input_snapshot": {"messages": it["messages"], "metadata": it["metadata"]}})
            })
            .collect();
        let results: Vec<Value> = (0..runs.len())
            .map(|i| {
                json!({"run_id": format!("run-{i}"), "status": if i == 0 { "failed" } else { "completed" },
                       "transcript": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello <b>"}],
                       "metrics": {"duration_ms": 12, "turn_count": 1}})
            })
            .collect();
        json!({"bundle_version_id": demo.bundle_version_id,
               "run_batch": {"execution_target": "local", "status": "completed",
                             "started_at": "2025-01-01T10:00:00Z", "completed_at": "2025-01-01T10:01:00Z"},
               "runs": runs, "turns": [], "run_results": results,
               "upload_meta": {"cli_version": "0.5.0", "ci": {"provider": "github", "commit": "abc"}}})
    }
}
