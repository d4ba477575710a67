//! The pages, persistence across restarts, and the binary.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use fluxloop_platform::Config;
use serde_json::{json, Value};

use crate::{agent, Env};

#[test]
fn settings_page_lists_keys_escaped() {
    let e = Env::new();
    let demo = e.demo();
    e.p.create_key(&demo.project_id, "<script>x</script>", "user", "read")
        .expect("key");
    let session = e.sign_in();
    let page = e
        .get("/settings/api-keys")
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    assert!(page.contains("&lt;script&gt;x&lt;/script&gt;") && !page.contains("<script>x"));
    assert!(page.contains("demo key") && page.contains("read-write"));
    assert!(!page.contains(&demo.key), "a key must never be shown again");
    let index = e.get("/").send().expect(200).text;
    assert!(index.contains("/device") && index.contains("/settings/api-keys"));
    assert!(index.contains("/run-batches") && index.contains("/login"));
    // DNS rebinding and cross-site posts are refused (the attacks in full:
    // tests/api/hardening.rs).
    e.get("/settings/api-keys")
        .header("Host", "evil.example")
        .send()
        .expect(421);
    e.post("/device")
        .header("Origin", "http://evil.example")
        .raw("user_code=X&action=approve")
        .send()
        .expect(403);
}

#[test]
fn data_survives_a_restart_on_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data: Some(dir.path().join("sub").join("platform.db")),
        ..Config::default()
    };
    let (demo, batch, token) = {
        let e = Env::with(config.clone());
        let demo = e.demo();
        let body = e.upload_body(&demo, &demo.key, 2);
        let r = e
            .post("/api/sync/upload")
            .auth(&demo.key)
            .header("Idempotency-Key", "same")
            .json(&body)
            .send()
            .expect(200)
            .json();
        let token = e.login()["access_token"].as_str().expect("t").to_owned();
        (
            demo,
            r["run_batch_id"].as_str().expect("id").to_owned(),
            token,
        )
    };
    let e = Env::with(config);
    e.get("/api/projects").auth(&demo.key).send().expect(200);
    e.get("/api/projects").auth(&token).send().expect(200);
    assert_eq!(e.p.run_count(&batch).expect("count"), 2);
    let body = e.upload_body(&demo, &demo.key, 2);
    let r = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "same")
        .json(&body)
        .send()
        .expect(200)
        .json();
    assert_eq!(r["run_batch_id"], batch.as_str());
    assert_eq!(e.p.batch_ids().expect("ids").len(), 1);
    let me = e.get("/api/api-keys/self").auth(&demo.key).send().json();
    assert!(me["usage_count"].as_i64().is_some_and(|n| n >= 4));
}

/// Runs the binary to completion; returns (status, stdout, stderr).
fn run_bin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fluxloop-platform"))
        .args(args)
        .output()
        .expect("run binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_serve_demo_prints_url_and_a_working_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fluxloop-platform"))
        .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--data"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let url = first
        .strip_prefix("fluxloop-platform listening on ")
        .expect("listening line")
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let key_line = lines.next().and_then(Result::ok).unwrap_or_default();
    let key = key_line
        .strip_prefix("demo key: ")
        .expect("key line")
        .to_owned();
    assert!(key.starts_with("flx_sa_"));
    let agent = agent();
    let resp = agent
        .get(format!("{url}/api/projects"))
        .header("Authorization", format!("Bearer {key}"))
        .call()
        .expect("call");
    assert_eq!(resp.status().as_u16(), 200);
    // Admin subcommands work on the same file while the server runs.
    let start: Value = serde_json::from_str(
        &agent
            .post(format!("{url}/api/cli-connect/start"))
            .send("{}")
            .expect("start")
            .into_body()
            .read_to_string()
            .expect("body"),
    )
    .expect("json");
    let code = start["user_code"].as_str().expect("code");
    let (ok, _, err) = run_bin(&["approve-device", code, "--data", db.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    let done = agent
        .post(format!("{url}/api/cli-connect/complete"))
        .send(json!({"device_code": start["device_code"]}).to_string())
        .expect("complete")
        .into_body()
        .read_to_string()
        .expect("body");
    assert!(done.contains("\"approved\""), "{done}");
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(err.contains("GET /api/projects 200"), "{err}");
    assert!(
        !err.contains(&key),
        "the request log must not contain the key"
    );
}

#[test]
fn binary_admin_subcommands_print_keys_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let db = db.to_str().expect("utf8");
    let (ok, out, err) = run_bin(&["seed-demo", "--data", db, "--inputs", "12"]);
    assert!(ok, "{err}");
    assert!(
        out.trim().starts_with("flx_sa_") && out.lines().count() == 1,
        "{out}"
    );
    let (ok, out, err) = run_bin(&[
        "create-key",
        "--data",
        db,
        "--scope",
        "read",
        "--type",
        "user",
        "--name",
        "ci",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.trim().starts_with("flx_api_") && out.lines().count() == 1,
        "{out}"
    );
    let (ok, _, err) = run_bin(&["create-key", "--data", db, "--scope", "everything"]);
    assert!(!ok && err.contains("scope"), "{err}");
    let (ok, _, err) = run_bin(&["deny-device", "ABCD-EFGH", "--data", db]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, out, _) = run_bin(&["--help"]);
    assert!(ok && out.contains("seed-demo") && out.contains("--poll-interval"));
    let (ok, _, err) = run_bin(&["serve", "--bogus"]);
    assert!(!ok && err.contains("--bogus"), "{err}");
    let e = Env::with(Config {
        data: Some(dir.path().join("p.db")),
        ..Config::default()
    });
    let key = out_key(run_bin(&[
        "create-key",
        "--data",
        db,
        "--project",
        "Demo Project",
    ]));
    let pulled = e
        .post("/api/sync/pull")
        .auth(&key)
        .json(&json!({}))
        .send()
        .expect(200)
        .json();
    assert_eq!(pulled["input_items"].as_array().map(Vec::len), Some(12));
}

fn out_key((ok, out, err): (bool, String, String)) -> String {
    assert!(ok, "{err}");
    out.trim().to_owned()
}
