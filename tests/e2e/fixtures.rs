//! Shared set-up for the hardening tests (faults, kill, bad input, secrets,
//! load): a seeded platform, a key, results on disk, a device login.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fluxloop_platform::{Demo, Platform};
use serde_json::Value;

use crate::util::{platform, CheckedPlatform, Cmd, PendingLogin, Run, Sandbox};

/// The agent every fixture runs: answers at once.
pub const ECHO_OK: &str = r#"{"success":true,"output":"ok"}"#;

pub struct Fx {
    pub p: CheckedPlatform,
    pub demo: Demo,
    pub sb: Sandbox,
}

/// A seeded platform (plus a scenario `big` of `big` inputs when non-zero).
pub fn setup(big: usize) -> Fx {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    if big > 0 {
        p.seed_scenario(&demo.project_id, "big", big).unwrap();
    }
    Fx {
        p,
        demo,
        sb: Sandbox::new(),
    }
}

/// Short timeouts and quick retries, so that every failure ends in seconds.
pub fn fast(cmd: Cmd) -> Cmd {
    cmd.env("FLUXLOOP_HTTP_TIMEOUT", "2")
        .env("FLUXLOOP_CONNECT_TIMEOUT", "2")
        .env("FLUXLOOP_HTTP_RETRIES", "3")
        .env("FLUXLOOP_RETRY_BACKOFF_MS", "10")
}

impl Fx {
    /// A command with the demo key against `endpoint`.
    pub fn cmd_at(&self, endpoint: &str, args: &[&str]) -> Cmd {
        fast(self.sb.cmd(args))
            .env("FLUXLOOP_API_KEY", &self.demo.key)
            .env("FLUXLOOP_API_ENDPOINT", endpoint)
    }

    pub fn cmd(&self, args: &[&str]) -> Cmd {
        self.cmd_at(&self.p.url(), args)
    }

    /// Pulls `scenario` and runs the echo agent on it without uploading;
    /// returns the result directory.
    pub fn results(&self, scenario: &str) -> PathBuf {
        self.cmd(&["sync", "pull", "--scenario", scenario, "--yes"])
            .run()
            .ok();
        self.cmd(&[
            "test",
            "--scenario",
            scenario,
            "--skip-pull",
            "--skip-upload",
            "--parallel",
            "4",
            "--",
            "echo",
            ECHO_OK,
        ])
        .run()
        .ok();
        newest_result_dir(&self.sb)
    }

    /// The batch of `key`, as `GET /api/run-batches?key=` answers.
    pub fn batch(&self, key: &str) -> Value {
        let url = format!(
            "{}/api/run-batches?key={}",
            self.p.url(),
            key.replace(':', "%3A")
        );
        let mut resp = ureq::get(&url)
            .header("Authorization", &format!("Bearer {}", self.demo.key))
            .call()
            .unwrap();
        serde_json::from_reader(resp.body_mut().as_reader()).unwrap()
    }

    /// The batch of `key` is completed and holds `times` runs of each of
    /// `inputs` inputs; returns it.
    #[track_caller]
    pub fn assert_each_input(&self, key: &str, inputs: usize, times: usize) -> Value {
        let b = self.batch(key);
        let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in b["runs"].as_array().unwrap() {
            *seen
                .entry(r["input_item_id"].as_str().unwrap())
                .or_default() += 1;
        }
        assert_eq!(seen.len(), inputs, "{seen:?}");
        assert!(
            seen.values().all(|&n| n == times),
            "not each input {times} times: {seen:?}"
        );
        assert_eq!(b["status"], "completed");
        b
    }

    /// Every batch holds exactly `runs` runs and there is exactly one batch.
    #[track_caller]
    pub fn assert_stored_once(&self, runs: usize) -> String {
        let batches = self.p.batch_ids().unwrap();
        assert_eq!(batches.len(), 1, "batches: {batches:?}");
        assert_eq!(self.p.run_count(&batches[0]).unwrap(), runs);
        batches[0].clone()
    }
}

pub fn newest_result_dir(sb: &Sandbox) -> PathBuf {
    let root = sb.work().join(".fluxloop").join("results");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop().expect("a result directory")
}

/// Every line of a JSONL file parses as a JSON object; returns them.
#[track_caller]
pub fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends mid-line",
        path.display()
    );
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {l:?}", path.display(), i + 1));
            assert!(v.is_object(), "{}:{}: not an object", path.display(), i + 1);
            v
        })
        .collect()
}

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit(") ").next().unwrap_or("");
        !state.starts_with('Z') && !state.starts_with('X')
    })
}

/// Waits up to `limit` for `pid` to be gone.
pub fn gone_within(pid: i32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

/// `auth login --no-browser`, approved on the platform; the sandbox then
/// holds a login in its credentials file.
pub fn login(sb: &Sandbox, p: &Platform, extra: &[(&str, &str)]) -> Run {
    let mut cmd = sb.cmd(&[
        "auth",
        "login",
        "--no-browser",
        "--force",
        "--endpoint",
        &p.url(),
    ]);
    for (k, v) in extra {
        cmd = cmd.env(k, v);
    }
    let pending = PendingLogin::start(cmd);
    p.approve_device(&pending.code).unwrap();
    pending.finish()
}

/// The stored login of profile `default`: (access token, refresh token).
pub fn stored_tokens(sb: &Sandbox) -> (String, String) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    let p = &v["profiles"]["default"];
    (
        p["access_token"].as_str().unwrap().to_string(),
        p["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain syscall on a child we started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
