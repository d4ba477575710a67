//! Keyless CI (issue 19), the admin side: trust policies over the API and
//! the `trust` subcommand, what a policy must pin, accounting on the keys
//! page and in the server log, and issuers that misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::oidc::{main_claims, refused, Keyless};

#[test]
fn a_policy_must_pin_an_identity_and_use_https() {
    let k = Keyless::new();
    let path = format!("/api/projects/{}/trust-policies", k.demo.project_id);
    let post = |body: Value| k.env.post(&path).auth(&k.admin).json(&body).send();
    let url = k.issuer.url();
    let unpinned = [
        json!({"issuer": url, "conditions": {"ref": "refs/heads/main"}, "scope": "read"}),
        json!({"issuer": url, "conditions": {"sub": "*"}, "scope": "read"}),
        json!({"issuer": url, "conditions": {"sub": "repo:*"}, "scope": "read"}),
        json!({"issuer": url, "conditions": {"repository": "*/app"}, "scope": "read"}),
        json!({"issuer": url, "conditions": {}, "scope": "read"}),
    ];
    for body in unpinned {
        let r = post(body).expect_error(422, "invalid_request");
        let message = r.json()["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned();
        assert!(
            message.ends_with("otherwise it would trust every repository on that issuer"),
            "{message}"
        );
    }
    let conditions = json!({"repository": "org/app"});
    let r = post(json!({"issuer": "http://ci.example", "conditions": conditions, "scope": "read"}))
        .expect_error(422, "invalid_request");
    assert_eq!(
        r.json()["error"]["message"],
        json!("issuer `http://ci.example` must use https; plain http is allowed only for 127.0.0.1, [::1] or localhost")
    );
    post(json!({"issuer": url, "conditions": conditions, "scope": "admin"}))
        .expect_error(422, "invalid_request");
    post(json!({"issuer": url, "conditions": conditions})).expect_error(400, "invalid_request");
    post(json!({"issuer": url, "conditions": conditions, "scope": "read", "x": 1}))
        .expect_error(400, "invalid_request");
    let created =
        post(json!({"issuer": url, "conditions": conditions, "scope": "read", "audience": "ci"}))
            .expect(201)
            .json();
    assert_eq!(
        created,
        json!({"id": created["id"], "project_id": k.demo.project_id, "name": "repository=org/app",
               "issuer": url, "audience": "ci", "conditions": {"repository": "org/app"}, "scope": "read",
               "created_at": created["created_at"], "last_used_at": null, "use_count": 0})
    );
    let listed = k.env.get(&path).auth(&k.admin).send().expect(200).json();
    assert_eq!(listed, json!({"trust_policies": [created]}));
}

#[test]
fn only_admins_of_the_project_manage_its_policies() {
    let k = Keyless::new();
    let policy = k.trust_main();
    let path = format!("/api/projects/{}/trust-policies", k.demo.project_id);
    k.env.get(&path).send().expect_error(401, "unauthenticated");
    k.env
        .get(&path)
        .auth(&k.demo.key)
        .send()
        .expect_error(403, "forbidden");
    let other = k.env.p.store().create_project("Other").expect("project");
    let foreign_admin = k
        .env
        .p
        .create_key(&other, "admin", "service-account", "admin")
        .expect("key")
        .key;
    k.env
        .get(&path)
        .auth(&foreign_admin)
        .send()
        .expect_error(404, "not_found");
    let delete = |token: &str| {
        k.env
            .call(
                "DELETE",
                &format!("/api/trust-policies/{}", policy["id"].as_str().expect("id")),
            )
            .auth(token)
            .send()
    };
    delete(&foreign_admin).expect_error(404, "not_found");
    let grant = k.exchange(&k.main_token()).expect(200).json();
    let issued = grant["access_token"].as_str().expect("token");
    let r = delete(&k.admin).expect(204);
    assert_eq!(r.text, "");
    delete(&k.admin).expect_error(404, "not_found");
    k.env
        .get("/api/api-keys/self")
        .auth(issued)
        .send()
        .expect_error(401, "key_revoked");
    let token = k.main_token();
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    refused(k.exchange(&token), "issuer_not_trusted", shown, &token);
}

#[test]
fn exchanges_and_requests_count_as_uses_of_the_policy() {
    let k = Keyless::new();
    let policy = k.trust(json!({
        "issuer": k.issuer.url(), "conditions": {"sub": "repo:org/app:*"}, "scope": "read-write",
        "name": "<b>app</b> main",
    }));
    let grant = k.exchange(&k.main_token()).expect(200).json();
    let token = grant["access_token"].as_str().expect("token");
    for _ in 0..2 {
        k.env
            .post("/api/sync/pull")
            .auth(token)
            .json(&json!({}))
            .send()
            .expect(200);
    }
    // A refused exchange is no use.
    k.exchange(
        &k.issuer
            .mint(json!({"sub": "repo:evil/x", "aud": "fluxloop"})),
    )
    .expect(401);
    let path = format!("/api/projects/{}/trust-policies", k.demo.project_id);
    let listed = k.env.get(&path).auth(&k.admin).send().expect(200).json();
    let counted = &listed["trust_policies"][0];
    assert_eq!(counted["id"], policy["id"]);
    assert_eq!(counted["use_count"], json!(3), "one exchange and two pulls");
    assert!(counted["last_used_at"].is_string(), "{counted}");
    let session = k.env.sign_in();
    let page = k
        .env
        .get("/settings/api-keys")
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    let row = format!(
        "<tr><td>&lt;b&gt;app&lt;/b&gt; main</td><td>{}</td><td><code>sub=repo:org/app:*</code></td><td>read-write</td><td>{}</td><td>3</td></tr>",
        k.issuer.url(),
        counted["last_used_at"].as_str().expect("time")
    );
    // substring: the row sits inside the whole page, whose frame other tests check.
    assert!(
        page.contains("<h2>Trust policies</h2>") && page.contains(&row),
        "{page}"
    );
    assert!(!page.contains(token), "an issued token is never shown");
}

/// An issuer address that answers every connection with `answer` (after
/// `delay`), on a thread of its own; serves `connections` of them.
fn misbehaving(answer: Vec<u8>, delay: Duration, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            std::thread::sleep(delay);
            let _ = stream.write_all(&answer);
        }
    });
    url
}

fn http_answer(body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

#[test]
fn a_misbehaving_issuer_fails_the_exchange_not_the_server() {
    let k = Keyless::new();
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let cases = [
        (
            "garbage",
            http_answer(b"<html>not json"),
            Duration::ZERO,
            "is not JSON",
        ),
        (
            "huge",
            http_answer(huge.as_bytes()),
            Duration::ZERO,
            "failed",
        ),
        ("slow", http_answer(b"{}"), Duration::from_secs(8), "failed"),
        (
            "redirect",
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            Duration::ZERO,
            "answered HTTP 302",
        ),
        (
            "not http",
            b"\x00\x01garbage\r\n\r\n".to_vec(),
            Duration::ZERO,
            "failed",
        ),
        (
            "wrong issuer",
            http_answer(br#"{"issuer": "https://elsewhere.example", "jwks_uri": "x"}"#),
            Duration::ZERO,
            "names the issuer `https://elsewhere.example`",
        ),
    ];
    for (what, answer, delay, expected) in cases {
        let url = misbehaving(answer, delay, 4);
        let (message, took) = discovery_refusal(&k, &url);
        assert!(took < Duration::from_secs(7), "{what} took {took:?}");
        let prefix = format!("cannot read the keys of the issuer {url}: ");
        // substring: the tail is the HTTP client's own error text.
        assert!(
            message.starts_with(&prefix) && message.contains(expected),
            "{what}: {message}"
        );
        // Meanwhile the server answers everyone else.
        k.env.get("/api/health").send().expect(200);
    }
}

/// Trusts issuer `url` and exchanges a token of it, which must be refused
/// as `discovery_failed`; the message, and how long the refusal took.
fn discovery_refusal(k: &Keyless, url: &str) -> (String, Duration) {
    k.trust(json!({"issuer": url, "conditions": {"sub": "repo:org/app:*"}, "scope": "read"}));
    let mut claims = main_claims();
    claims["iss"] = json!(url);
    let token = k.issuer.mint(claims);
    let started = Instant::now();
    let shown = json!({"iss": url, "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    let message = refused(k.exchange(&token), "discovery_failed", shown, &token);
    (message, started.elapsed())
}

/// An issuer whose discovery answer starts at once and never ends: a byte
/// every 100 ms, well under the size limit, for as long as it is read.
fn trickling() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"pad\": \"";
                let _ = stream.write_all(head.as_bytes());
                while stream.write_all(b"x").is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    url
}

#[test]
fn a_discovery_document_that_never_ends_fails_within_the_timeout() {
    let k = Keyless::new();
    let url = trickling();
    let (message, took) = discovery_refusal(&k, &url);
    assert!(took < Duration::from_secs(7), "took {took:?}: {message}");
    assert!(
        message.starts_with(&format!("cannot read the keys of the issuer {url}: ")),
        "{message}"
    );
}

/// Runs the binary to completion: exit code, stdout, stderr.
fn platform_bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fluxloop-platform"))
        .args(args)
        .output()
        .expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database with the demo project; its path.
fn seeded_db(dir: &tempfile::TempDir) -> String {
    let db = dir.path().join("p.db").to_str().expect("utf8").to_owned();
    let (code, _, err) = platform_bin(&["seed-demo", "--data", &db]);
    assert_eq!(code, 0, "{err}");
    db
}

const GITHUB: &str = "https://token.actions.githubusercontent.com";

#[test]
fn trust_subcommands_add_list_and_remove_policies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = &seeded_db(&dir);
    let (code, id, err) = platform_bin(&[
        "trust",
        "add",
        "--data",
        db,
        "--project",
        "Demo Project",
        "--issuer",
        GITHUB,
        "--claim",
        "repository=acme/app",
        "--claim=ref=refs/heads/*",
        "--name",
        "acme",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    assert_eq!(
        err,
        format!("project {} now trusts {GITHUB} (audience fluxloop) where ref=refs/heads/*, repository=acme/app, with scope read-write\n",
                listed_project(db))
    );
    let (code, out, _) = platform_bin(&["trust", "list", "--data", db, "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    let policy = &listed["trust_policies"][0];
    assert_eq!(
        listed,
        json!({"trust_policies": [{
            "id": id, "project_id": policy["project_id"], "name": "acme", "issuer": GITHUB,
            "audience": "fluxloop", "conditions": {"ref": "refs/heads/*", "repository": "acme/app"},
            "scope": "read-write", "created_at": policy["created_at"], "last_used_at": null, "use_count": 0,
        }]})
    );
    let (code, out, _) =
        platform_bin(&["trust", "list", "--data", db, "--project", "Demo Project"]);
    assert_eq!(code, 0);
    let project = policy["project_id"].as_str().expect("project");
    let header = format!(
        "{:<36}  {:<36}  NAME  ISSUER{}  AUDIENCE  CONDITIONS{}  SCOPE       LAST USED  USES",
        "ID",
        "PROJECT",
        " ".repeat(GITHUB.len() - 6),
        " ".repeat(27)
    );
    let row = format!("{id}  {project}  acme  {GITHUB}  fluxloop  ref=refs/heads/*, repository=acme/app  read-write  never      0");
    assert_eq!(out, format!("{header}\n{row}\n"));
    let (code, _, err) = platform_bin(&["trust", "remove", &id, "--data", db]);
    assert_eq!(
        (code, err),
        (
            0,
            format!("removed trust policy {id}; the tokens it issued stop working\n")
        )
    );
    let (code, out, _) = platform_bin(&["trust", "list", "--data", db, "--json"]);
    assert_eq!((code, out.as_str()), (0, "{\"trust_policies\":[]}\n"));
}

/// The demo project's id, as `trust list --json` has it.
fn listed_project(db: &str) -> String {
    let (_, out, _) = platform_bin(&["trust", "list", "--data", db, "--json"]);
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    listed["trust_policies"][0]["project_id"]
        .as_str()
        .expect("project")
        .to_owned()
}

#[test]
fn trust_subcommands_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = &seeded_db(&dir);
    let pins = "sub, repository, repository_id, repository_owner, project_path, namespace_path, job_workflow_ref";
    let cases: [(&[&str], String); 6] = [
        (&["--issuer", GITHUB, "--claim", "ref=refs/heads/main"],
         format!("a trust policy must pin one of {pins} with a pattern that starts with a name, not a wildcard (`*`, `*/app`, `repo:*`): otherwise it would trust every repository on that issuer")),
        (&["--issuer", GITHUB, "--claim", "repository"],
         "--claim needs NAME=PATTERN (e.g. repository=org/app), not `repository`".to_owned()),
        (&["--issuer", "http://ci.example", "--claim", "repository=a/b"],
         "issuer `http://ci.example` must use https; plain http is allowed only for 127.0.0.1, [::1] or localhost".to_owned()),
        (&["--claim", "repository=a/b"], "missing --issuer URL for `trust add`".to_owned()),
        (&["--issuer", GITHUB, "--claim", "sub=x", "--scope", "admin"],
         "scope must be read, write or read-write, not `admin`".to_owned()),
        (&["--issuer", GITHUB, "--claim", "sub=x", "--claim", "sub=y"], "--claim sub is given twice".to_owned()),
    ];
    for (args, message) in cases {
        let mut all = vec!["trust", "add", "--data", db, "--project", "Demo Project"];
        all.extend_from_slice(args);
        let expected = format!("error: {message}\n  hint: run `fluxloop-platform --help`\n");
        assert_eq!(platform_bin(&all), (2, String::new(), expected), "{args:?}");
    }
    let hint = "\n  hint: run `fluxloop-platform --help`\n";
    let nope = [
        "trust",
        "add",
        "--data",
        db,
        "--project",
        "nope",
        "--issuer",
        GITHUB,
        "--claim",
        "sub=x",
    ];
    assert_eq!(
        platform_bin(&nope),
        (
            2,
            String::new(),
            format!("error: project nope not found{hint}")
        )
    );
    let gone = ["trust", "remove", "no-such-id", "--data", db];
    assert_eq!(
        platform_bin(&gone),
        (
            2,
            String::new(),
            format!("error: trust policy no-such-id not found{hint}")
        )
    );
    let (code, out, _) = platform_bin(&["trust", "add", "--help"]);
    // substring: the help is the whole usage text, checked in admin.rs.
    assert!(
        code == 0 && out.contains("fluxloop-platform trust add --project ID_OR_NAME"),
        "{out}"
    );
    let unknown = ["trust", "frobnicate"];
    let expected =
        format!("error: unknown action `trust frobnicate`; use add, list or remove{hint}");
    assert_eq!(platform_bin(&unknown), (2, String::new(), expected));
}

#[test]
fn the_server_log_has_one_line_per_exchange_and_never_the_token() {
    let issuer = fluxloop_testkit::oidc::Issuer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("p.db");
    let db = db.to_str().expect("utf8");
    assert_eq!(platform_bin(&["seed-demo", "--data", db]).0, 0);
    let (code, _, err) = platform_bin(&[
        "trust",
        "add",
        "--data",
        db,
        "--project",
        "Demo Project",
        "--issuer",
        issuer.url(),
        "--claim",
        "sub=repo:org/app:*",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fluxloop-platform"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data", db])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let url = first
        .strip_prefix("fluxloop-platform listening on ")
        .expect("listening line")
        .to_owned();
    let good = issuer.mint(main_claims());
    let bad = issuer.mint(json!({"sub": "repo:evil/app", "aud": "fluxloop"}));
    let agent = crate::agent();
    for (token, status) in [(&good, 200), (&bad, 401)] {
        let r = agent
            .post(format!("{url}/api/auth/oidc/exchange"))
            .header("Content-Type", "application/json")
            .send(json!({ "token": token }).to_string())
            .expect("exchange");
        assert_eq!(r.status().as_u16(), status);
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let oidc: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("oidc exchange"))
        .collect();
    assert_eq!(oidc.len(), 2, "{err}");
    let iss = issuer.url();
    assert!(
        oidc[0].starts_with("oidc exchange accepted: policy "),
        "{}",
        oidc[0]
    );
    let matched = format!("claims {{\"aud\":\"fluxloop\",\"iss\":\"{iss}\",\"sub\":\"repo:org/app:ref:refs/heads/main\"}}");
    assert!(oidc[0].ends_with(&matched), "{}", oidc[0]);
    assert_eq!(
        oidc[1],
        format!("oidc exchange refused (no_matching_policy): claims {{\"aud\":\"fluxloop\",\"iss\":\"{iss}\",\"sub\":\"repo:evil/app\"}}")
    );
    for token in [&good, &bad] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!err.contains(signature), "the log has a token: {err}");
    }
}
