use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use super::*;
use crate::config::settings::{Flags, Inputs, Settings};

const KEY: &str = "flx_api_AAAAAAAAAAAAAAAAAAAAAAAA";
const KEY_FILE: &str = "flx_sa_FFFFFFFFFFFFFFFFFFFFFFFF";

/// Resolves the settings of `env` in a workspace whose fluxloop.yaml is
/// `yaml` (and a key file beside it when `key_file`), with `flags`.
fn resolve(env: &[(&str, &str)], yaml: &str, flags: &[(&'static str, &str)]) -> InDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("key.txt"), KEY_FILE).unwrap();
    std::fs::write(root.join("fluxloop.yaml"), yaml).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.display().to_string();
    let mut pairs = env.to_vec();
    pairs.push(("FLUXLOOP_HOME", &home));
    let env = Env::from_pairs(&pairs);
    let mut f = Flags::new();
    for (k, v) in flags {
        f.insert(k, v.to_string());
    }
    let settings = Settings::resolve(&Inputs {
        env: &env,
        cwd: &root,
        flags: &f,
        config_flag: None,
    });
    InDir {
        _dir: dir,
        settings,
    }
}

/// Settings with the directory they were read from, removed on drop.
struct InDir {
    _dir: tempfile::TempDir,
    settings: Settings,
}

impl std::ops::Deref for InDir {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

fn origin(s: &Settings) -> String {
    s.credential.as_ref().unwrap().credential.origin.to_string()
}

fn oidc_of(s: &Settings) -> OidcCredential {
    match &s.credential.as_ref().unwrap().credential.val.kind {
        CredentialKind::Oidc(o) => (**o).clone(),
        other => panic!("not OIDC: {other:?}"),
    }
}

#[test]
fn the_oidc_slot_sits_below_the_token_variable_and_above_key_file() {
    let id = ("FLUXLOOP_ID_TOKEN", "eyJ.a.b");
    let s = resolve(&[id], "api:\n  key_file: key.txt\n", &[]);
    assert_eq!(origin(&s), "GitLab CI OIDC");
    let s = resolve(&[id, ("FLUXLOOP_TOKEN", "flx_at_x")], "", &[]);
    assert_eq!(origin(&s), "environment variable FLUXLOOP_TOKEN");
    let s = resolve(&[id, ("FLUXLOOP_API_KEY", KEY)], "", &[]);
    assert_eq!(origin(&s), "environment variable FLUXLOOP_API_KEY");
    let s = resolve(&[id], "", &[("--api-key", KEY)]);
    assert_eq!(origin(&s), "--api-key");
}

#[test]
fn sources_in_order_github_first_and_only_with_both_variables() {
    let url = (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "https://t.example/x?api-version=2.0",
    );
    let req = ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token");
    let all = [
        url,
        req,
        ("FLUXLOOP_ID_TOKEN", "a"),
        ("FLUXLOOP_OIDC_TOKEN", "b"),
        ("FLUXLOOP_OIDC_TOKEN_FILE", "/f"),
    ];
    for (skip, want) in [
        (0, "GitHub Actions OIDC"),
        (2, "GitLab CI OIDC"),
        (3, "OIDC token (FLUXLOOP_OIDC_TOKEN)"),
        (4, "OIDC token (FLUXLOOP_OIDC_TOKEN_FILE)"),
    ] {
        assert_eq!(origin(&resolve(&all[skip..], "", &[])), want);
    }
    // The URL alone (no request token) is no source.
    let s = resolve(&[url, ("FLUXLOOP_OIDC_TOKEN", "b")], "", &[]);
    assert_eq!(origin(&s), "OIDC token (FLUXLOOP_OIDC_TOKEN)");
}

#[test]
fn oidc_false_turns_the_slot_off_from_every_source() {
    let id = ("FLUXLOOP_ID_TOKEN", "eyJ.a.b");
    let yaml = "api:\n  key_file: key.txt\n";
    let off = [
        resolve(&[id], yaml, &[("--oidc", "false")]),
        resolve(&[id, ("FLUXLOOP_OIDC", "0")], yaml, &[]),
        resolve(&[id], &format!("{yaml}oidc: false\n"), &[]),
        resolve(&[id], &format!("{yaml}oidc:\n  enabled: false\n"), &[]),
    ];
    for s in off {
        assert!(origin(&s).starts_with("key file "), "{}", origin(&s));
    }
    // The flag beats the variable.
    let s = resolve(
        &[id, ("FLUXLOOP_OIDC", "false")],
        yaml,
        &[("--oidc", "true")],
    );
    assert_eq!(origin(&s), "GitLab CI OIDC");
}

#[test]
fn auto_mode_keeps_a_lower_credential_to_fall_back_to_and_forced_does_not() {
    let id = ("FLUXLOOP_ID_TOKEN", "eyJ.a.b");
    let s = resolve(&[id], "api:\n  key_file: key.txt\n", &[]);
    let r = s.credential.as_ref().unwrap();
    assert!(!oidc_of(&s).forced);
    let mut fell = r.clone();
    fell.fall_back();
    assert_eq!(fell.credential.val.secret.expose(), KEY_FILE);
    assert!(fell.fallback.is_none());

    let s = resolve(&[id], "api:\n  key_file: key.txt\noidc: true\n", &[]);
    assert!(oidc_of(&s).forced);
    assert!(s.credential.as_ref().unwrap().fallback.is_none());

    // No lower credential: nothing to fall back to, and no error either.
    let s = resolve(&[id], "", &[]);
    assert!(s.credential.as_ref().unwrap().fallback.is_none());
}

#[test]
fn forced_without_a_source_says_what_the_job_lacks() {
    let s = resolve(&[], "", &[("--oidc", "true")]);
    let e = s.credential.as_ref().map(|_| ()).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert_eq!(
        e.to_string(),
        "OIDC is required (from --oidc) but no OIDC token was found"
    );
    let s = resolve(&[("GITHUB_ACTIONS", "true")], "oidc: true\n", &[]);
    let e = s.credential.as_ref().map(|_| ()).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "but this GitHub Actions job cannot request an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set"
        ),
        "{e}"
    );
    assert_eq!(
        e.hints(),
        vec!["add `permissions: id-token: write` to the job (or the workflow)".to_string()]
    );
    // A higher credential still wins over a forced OIDC without a token.
    let s = resolve(&[("FLUXLOOP_API_KEY", KEY)], "oidc: true\n", &[]);
    assert_eq!(origin(&s), "environment variable FLUXLOOP_API_KEY");
}

#[test]
fn audience_defaults_to_fluxloop_and_follows_the_setting() {
    let id = ("FLUXLOOP_OIDC_TOKEN", "eyJ.a.b");
    assert_eq!(oidc_of(&resolve(&[id], "", &[])).audience, "fluxloop");
    let s = resolve(&[id], "oidc:\n  audience: from-yaml\n", &[]);
    assert_eq!(oidc_of(&s).audience, "from-yaml");
    let s = resolve(
        &[id, ("FLUXLOOP_OIDC_AUDIENCE", "from-env")],
        "oidc:\n  enabled: true\n  audience: from-yaml\n",
        &[],
    );
    let o = oidc_of(&s);
    assert_eq!((o.audience.as_str(), o.forced), ("from-env", true));
}

#[test]
fn a_bad_oidc_value_is_a_config_error_naming_it() {
    let s = resolve(
        &[("FLUXLOOP_OIDC", "maybe"), ("FLUXLOOP_ID_TOKEN", "x")],
        "",
        &[],
    );
    let e = s.credential.as_ref().map(|_| ()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "oidc \"maybe\" (from environment variable FLUXLOOP_OIDC) is not true or false (or 1 or 0)"
    );
}

#[test]
fn unknown_keys_under_oidc_are_refused() {
    let err = crate::config::project::parse_config("oidc:\n  audiance: x\n").unwrap_err();
    assert!(!err.1.is_empty());
}

/// A one-shot HTTP server on 127.0.0.1 answering `status` and `body`, and
/// the request line and Authorization header it received.
fn stand_in(
    status: u16,
    body: &'static str,
) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/_apis/token?api-version=2.0",
        listener.local_addr().unwrap()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut auth = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line
                .strip_prefix("authorization: ")
                .or(line.strip_prefix("Authorization: "))
            {
                auth = v.trim().to_string();
            }
        }
        let _ = reader.take(0).read_to_end(&mut Vec::new());
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (request_line.trim().to_string(), auth)
    });
    (url, handle)
}

fn net() -> Net {
    Net {
        opts: NetOptions {
            retries: 0,
            ..NetOptions::default()
        },
        observer: Arc::new(|_| {}),
    }
}

#[test]
fn the_github_token_request_sends_the_audience_and_the_request_token() {
    let (url, server) = stand_in(200, r#"{"count": 1, "value": "eyJhbGciOi.x.y"}"#);
    let got = github_token(&url, &Secret::new("req-tok"), "fluxloop", &net()).unwrap();
    assert_eq!(got.expose(), "eyJhbGciOi.x.y");
    let (line, auth) = server.join().unwrap();
    assert_eq!(
        line,
        "GET /_apis/token?api-version=2.0&audience=fluxloop HTTP/1.1"
    );
    assert_eq!(auth, "Bearer req-tok");
}

#[test]
fn a_failed_github_token_request_is_its_own_auth_error() {
    for (status, body, want) in [
        (
            401,
            r#"{"message": "bad"}"#,
            "the GitHub Actions OIDC token request failed: ",
        ),
        (
            200,
            "<html>",
            "the GitHub Actions OIDC token request failed: cannot reach ",
        ),
        (
            200,
            r#"{"value": ""}"#,
            "the GitHub Actions OIDC token request failed: the answer's value is empty",
        ),
    ] {
        let (url, server) = stand_in(status, body);
        let e = github_token(&url, &Secret::new("req-tok"), "fluxloop", &net()).unwrap_err();
        server.join().unwrap();
        assert_eq!(e.exit_code(), 3, "{e}");
        // substring: the rest is the client's own error text.
        assert!(e.to_string().starts_with(want), "{e}");
        assert!(!e.to_string().contains("req-tok"), "{e}");
    }
}

#[test]
fn the_token_file_is_read_trimmed_and_its_problems_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "eyJ.one.two\n").unwrap();
    assert_eq!(read_token_file(&path).unwrap().expose(), "eyJ.one.two");
    std::fs::write(&path, "  \n").unwrap();
    let e = read_token_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot read the OIDC token file {} (FLUXLOOP_OIDC_TOKEN_FILE): the file is empty",
            path.display()
        )
    );
    let e = read_token_file(Path::new("/nonexistent/token")).unwrap_err();
    assert_eq!(e.exit_code(), 3);
}

#[test]
fn a_rejection_lists_the_claims_one_per_line_and_never_the_token() {
    let body = br#"{"error": {"code": "oidc_rejected", "message": "no trust policy matches",
        "reason": "no_matching_policy",
        "claims": {"iss": "https://token.actions.githubusercontent.com", "sub": "repo:o/r:ref:refs/heads/x",
                   "aud": ["fluxloop"], "repository": "o/r", "ref": "refs/heads/x", "event_name": "push",
                   "nonsense": "dropped"}}}"#;
    let (reason, claims) = crate::api::types::oidc_rejection(body);
    let e = Error::OidcRejected {
        reason,
        message: "no trust policy matches".into(),
        claims,
    };
    assert_eq!(
        e.to_string(),
        "the platform rejected the CI's OIDC token (no_matching_policy): no trust policy matches
  issuer:      https://token.actions.githubusercontent.com
  subject:     repo:o/r:ref:refs/heads/x
  audience:    fluxloop
  repository:  o/r
  ref:         refs/heads/x
  event:       push"
    );
    assert_eq!(e.exit_code(), 3);
    // substring: the hint's wording is checked in the e2e transcripts.
    assert!(e.hints()[0].contains("sub pattern"), "{:?}", e.hints());
}

#[test]
fn modes_parse() {
    assert_eq!(parse_mode("TRUE"), Ok(Mode::Forced));
    assert_eq!(parse_mode("1"), Ok(Mode::Forced));
    assert_eq!(parse_mode("false"), Ok(Mode::Off));
    assert_eq!(parse_mode("0"), Ok(Mode::Off));
    assert_eq!(parse_mode(r#"{"audience":"x"}"#), Ok(Mode::Auto));
    assert!(parse_mode("yes").is_err());
}

#[test]
fn expiry_reads_in_minutes_then_hours() {
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        expires_in(now + Duration::from_secs(3590)),
        "expires in 59 min"
    );
    assert_eq!(
        expires_in(now + Duration::from_secs(5 * 3600 + 30)),
        "expires in 5 h"
    );
    assert_eq!(expires_in(now - Duration::from_secs(1)), "expired");
}

#[test]
fn the_agent_never_inherits_a_variable_that_offers_an_identity_token() {
    use crate::config::env::CREDENTIAL_VARS;
    for var in SOURCE_VARS
        .iter()
        .chain(&["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
    {
        assert!(CREDENTIAL_VARS.contains(var), "{var}");
    }
}
