//! Secret hygiene: every command path, in success and failure, plain,
//! `--verbose`, `--json` and GitHub Actions mode, with canary credentials
//! (platform-created API keys and a device-login token pair). No canary may
//! appear in stdout, stderr (except the `::add-mask::` lines that register
//! it with the runner), any file of the results directory, `junit.xml`, the
//! step summary, `$GITHUB_OUTPUT`, the platform's request records, or the
//! platform's SQLite files.

use std::path::{Path, PathBuf};

use fluxloop_platform::{Config, Platform};

use crate::fixtures::{fast, login, stored_tokens};
use crate::util::{Cmd, Run, Sandbox};

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Checker {
    canaries: Vec<String>,
    runs: usize,
}

impl Checker {
    #[track_caller]
    fn run(&mut self, what: &str, r: &Run) {
        self.runs += 1;
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!r.stderr.contains("panicked"), "{what}: {r:?}");
        for c in &self.canaries {
            for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                for line in text.lines() {
                    // The workflow command that registers the mask (on
                    // stdout or stderr) is the one line that must hold it.
                    if line == format!("::add-mask::{c}") {
                        continue;
                    }
                    assert!(
                        // substring: an absence, which must hold anywhere in the text
                        !line.contains(c.as_str()),
                        "{what}: canary on {stream}: {line}"
                    );
                }
            }
        }
    }

    /// `auth token` prints the credential on stdout: that is the command
    /// (docs/security.md). Its stdout is the one stream left out of the
    /// check, and only for that command; stderr is checked as for any other.
    #[track_caller]
    fn run_auth_token(&mut self, what: &str, r: &Run) {
        let stderr_only = Run {
            args: r.args.clone(),
            code: r.code,
            stdout: String::new(),
            stderr: r.stderr.clone(),
        };
        self.run(what, &stderr_only);
    }

    #[track_caller]
    fn file(&self, what: &str, path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_default();
        for c in &self.canaries {
            assert!(!contains(&bytes, c), "{what}: canary in {}", path.display());
        }
    }
}

/// The four output modes; GitHub mode writes its files into `gh`.
fn modes(cmd: impl Fn() -> Cmd, gh: &Path) -> Vec<(String, Cmd)> {
    vec![
        ("plain".into(), cmd()),
        ("verbose".into(), cmd().arg("--verbose").arg("--verbose")),
        ("json".into(), cmd().arg("--json")),
        (
            "github".into(),
            cmd()
                .env("GITHUB_ACTIONS", "true")
                .env("CI", "true")
                .env("GITHUB_STEP_SUMMARY", gh.join("summary.md"))
                .env("GITHUB_OUTPUT", gh.join("output.txt"))
                .env("GITHUB_ENV", gh.join("env.txt")),
        ),
    ]
}

#[test]
fn canary_credentials_never_leak_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("platform.db");
    let p = Platform::start(Config {
        data: Some(db.clone()),
        poll_interval_secs: 1,
        ..Config::default()
    })
    .unwrap();
    let demo = p.seed_demo().unwrap();
    let admin = p
        .create_key(&demo.project_id, "canary-admin", "service-account", "admin")
        .unwrap();
    let read = p
        .create_key(&demo.project_id, "canary-read", "service-account", "read")
        .unwrap();
    let sb = Sandbox::new();
    let gh = sb.dir.path().join("gh");
    std::fs::create_dir_all(&gh).unwrap();
    std::fs::write(
        sb.work().join("fluxloop.yaml"),
        "scenario: support-bot\nrunner:\n  type: process\n  command: [\"echo\", \"{\\\"success\\\":true,\\\"output\\\":\\\"ok\\\"}\"]\n",
    )
    .unwrap();
    login(&sb, &p, &[]).ok();
    let (access, refresh) = stored_tokens(&sb);
    let mut ck = Checker {
        canaries: vec![
            demo.key.clone(),
            admin.key.clone(),
            read.key.clone(),
            access.clone(),
            refresh.clone(),
        ],
        runs: 0,
    };
    let url = p.url();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let key_cmd = |key: &str, endpoint: &str, args: &[&str]| {
        fast(sb.cmd(args))
            .env("FLUXLOOP_API_KEY", key)
            .env("FLUXLOOP_API_ENDPOINT", endpoint)
            .env("FLUXLOOP_HTTP_RETRIES", "1")
    };
    let key_commands: Vec<(&str, Vec<&str>)> = vec![
        ("auth status", vec!["auth", "status"]),
        ("apikeys list", vec!["apikeys", "list"]),
        ("apikeys info", vec!["apikeys", "info"]),
        ("config get", vec!["config", "get", "api_key"]),
        ("config list", vec!["config", "list"]),
        ("sync pull", vec!["sync", "pull", "--yes"]),
        ("test", vec!["test", "--yes", "--junit", "junit.xml"]),
        ("sync upload", vec!["sync", "upload"]),
    ];
    for (key, endpoint, label) in [
        (&demo.key, &url, "ok"),
        (&admin.key, &url, "admin"),
        (&read.key, &url, "read-only (403 on upload)"),
        (&demo.key, &dead, "dead endpoint"),
    ] {
        for (name, args) in &key_commands {
            for (mode, cmd) in modes(|| key_cmd(key, endpoint, args), &gh) {
                let r = cmd.run();
                ck.run(&format!("{name} [{label}, {mode}]"), &r);
            }
        }
    }
    for (key, endpoint, label) in [(&demo.key, &url, "ok"), (&demo.key, &dead, "dead endpoint")] {
        for (mode, cmd) in modes(|| key_cmd(key, endpoint, &["auth", "token"]), &gh) {
            let r = cmd.run();
            // Real runs, not refusals: a key is printed without asking the
            // platform (so a dead endpoint does not matter), and the stderr
            // checked is that of a run that printed it.
            assert_eq!(r.code, Some(0), "{label}: {r:?}");
            ck.run_auth_token(&format!("auth token [{label}, {mode}]"), &r);
        }
    }
    // Malformed variants of a canary: the error names the problem, never the value.
    for bad in [
        format!("{} ", demo.key),
        format!("{}\n", demo.key),
        format!("\"{}\"", demo.key),
        format!("{}é", demo.key),
        format!("{}x y", demo.key),
    ] {
        for (mode, cmd) in modes(|| key_cmd(&bad, &url, &["sync", "pull"]), &gh) {
            let r = cmd.run();
            r.code(3);
            ck.run(&format!("malformed key [{mode}]"), &r);
        }
    }
    // Admin operations with the admin canary: create, then revoke.
    for (mode, cmd) in modes(
        || {
            key_cmd(
                &admin.key,
                &url,
                &["apikeys", "create", "--name", "tmp", "--scope", "read"],
            )
        },
        &gh,
    ) {
        let r = cmd.run();
        ck.run(&format!("apikeys create [{mode}]"), &r);
    }
    let revoked = p
        .create_key(&demo.project_id, "to-revoke", "service-account", "read")
        .unwrap();
    let revoked_id = {
        let r = key_cmd(&revoked.key, &url, &["apikeys", "info", "--json"]).run();
        r.ok();
        r.json()["id"].as_str().unwrap().to_string()
    };
    for (mode, cmd) in modes(
        || {
            key_cmd(
                &admin.key,
                &url,
                &["apikeys", "revoke", &revoked_id, "--yes"],
            )
        },
        &gh,
    ) {
        ck.run(&format!("apikeys revoke [{mode}]"), &cmd.run());
    }
    ck.canaries.push(revoked.key.clone());
    for (mode, cmd) in modes(|| key_cmd(&revoked.key, &url, &["sync", "pull"]), &gh) {
        let r = cmd.run();
        r.code(3);
        ck.run(&format!("revoked key [{mode}]"), &r);
    }

    // Login tokens: FLUXLOOP_TOKEN, and the stored profile (status, refresh,
    // pull, logout). Refresh issues new tokens: they become canaries too.
    for (mode, cmd) in modes(
        || {
            fast(sb.cmd(&["sync", "pull", "--yes"]))
                .env("FLUXLOOP_TOKEN", &access)
                .env("FLUXLOOP_API_ENDPOINT", &url)
        },
        &gh,
    ) {
        ck.run(&format!("FLUXLOOP_TOKEN pull [{mode}]"), &cmd.run());
    }
    for args in [
        &["auth", "status"][..],
        &["auth", "refresh"][..],
        &["sync", "pull", "--yes"][..],
        &["apikeys", "list"][..],
    ] {
        for (mode, cmd) in modes(|| fast(sb.cmd(args)), &gh) {
            let r = cmd.run();
            let (a, f) = stored_tokens(&sb);
            for t in [a, f] {
                if !ck.canaries.contains(&t) {
                    ck.canaries.push(t);
                }
            }
            ck.run(&format!("profile {args:?} [{mode}]"), &r);
        }
    }
    for (mode, cmd) in modes(|| fast(sb.cmd(&["auth", "token"])), &gh) {
        let r = cmd.run();
        ck.run_auth_token(&format!("profile auth token [{mode}]"), &r);
    }
    // A dead refresh token and a dead endpoint for the stored profile.
    for (mode, cmd) in modes(
        || fast(sb.cmd(&["auth", "status"])).env("FLUXLOOP_API_ENDPOINT", &dead),
        &gh,
    ) {
        ck.run(&format!("profile dead endpoint [{mode}]"), &cmd.run());
    }
    for (mode, cmd) in modes(|| fast(sb.cmd(&["auth", "logout"])), &gh) {
        ck.run(&format!("auth logout [{mode}]"), &cmd.run());
    }

    // Files: results, junit, GitHub files.
    let mut all = Vec::new();
    files(&sb.work().join(".fluxloop"), &mut all);
    files(&gh, &mut all);
    all.push(sb.work().join("junit.xml"));
    assert!(all.iter().any(|f| f.ends_with("junit.xml") && f.exists()));
    assert!(all.iter().any(|f| f.ends_with("trace_summary.jsonl")));
    assert!(all.iter().any(|f| f.ends_with("summary.md")));
    for f in &all {
        ck.file("output file", f);
    }
    // The platform's request records.
    let log = format!("{:?}", p.requests());
    for c in &ck.canaries {
        assert!(
            // substring: an absence, which must hold anywhere in the text
            !log.contains(c.as_str()),
            "canary in the platform's request records"
        );
    }
    // The platform's database stores hashes only.
    drop(p);
    let mut db_files = vec![];
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let f = PathBuf::from(format!("{}{suffix}", db.display()));
        if f.exists() {
            db_files.push(f);
        }
    }
    assert!(!db_files.is_empty());
    for f in &db_files {
        ck.file("platform database", f);
    }
    eprintln!(
        "secret hygiene: {} command runs, {} files, {} canaries",
        ck.runs,
        all.len() + db_files.len(),
        ck.canaries.len()
    );
}
