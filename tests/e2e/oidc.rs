//! Issue 19, keyless CI: a job authenticates with its CI's OIDC identity
//! (fluxloop-testkit's local issuer and GitHub token endpoint stand-in)
//! exchanged at the real platform, pulls, runs and uploads with no key, and
//! every refusal exits 3 with its reason and the claims, never a token.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxloop_platform::{Config, Demo, NewTrustPolicy, Platform};
use fluxloop_testkit::oidc::{github_claims, tamper, Issuer, KeyKind};
use serde_json::{json, Value};

use crate::fixtures::{fast, ECHO_OK};
use crate::util::{checked_platform, CheckedPlatform, Cmd, Run, Sandbox};

const REPO: &str = "acme/agent";
const MAIN: &str = "refs/heads/main";

/// A platform with the demo project, a local issuer it trusts for `REPO`,
/// and a sandbox. Every request the CLI sent is checked against
/// openapi.yaml when it drops, as `util::platform()` does.
struct Keyless {
    p: CheckedPlatform,
    demo: Demo,
    issuer: Issuer,
    sb: Sandbox,
}

impl Keyless {
    fn new() -> Keyless {
        Keyless::with_ttl(Duration::from_secs(3600))
    }

    fn with_ttl(ttl: Duration) -> Keyless {
        let p = checked_platform(Config {
            poll_interval_secs: 1,
            oidc_token_ttl: ttl,
            jwks_min_refresh: Duration::ZERO,
            ..Config::default()
        });
        let demo = p.seed_demo().unwrap();
        let k = Keyless {
            p,
            demo,
            issuer: Issuer::start(),
            sb: Sandbox::new(),
        };
        k.trust(&[("sub", &format!("repo:{REPO}:ref:{MAIN}"))]);
        k.trust(&[("project_path", REPO)]);
        k.trust(&[("sub", "system:serviceaccount:ci:*")]);
        k
    }

    fn p(&self) -> &Platform {
        &self.p
    }

    fn trust(&self, conditions: &[(&str, &str)]) {
        let conditions: BTreeMap<String, String> = conditions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.p()
            .store()
            .add_trust_policy(
                &self.demo.project_id,
                NewTrustPolicy {
                    issuer: self.issuer.url().to_string(),
                    audience: None,
                    conditions,
                    scope: "read-write".into(),
                    name: None,
                },
            )
            .unwrap();
    }

    /// A command against the platform with no key at all.
    fn cmd(&self, args: &[&str]) -> Cmd {
        fast(self.sb.cmd(args)).env("FLUXLOOP_API_ENDPOINT", self.p().url())
    }

    /// A GitHub Actions job with `id-token: write` for a push to main.
    fn github(&self, args: &[&str]) -> Cmd {
        let ep = self.issuer.github_token_endpoint(github_claims(REPO, MAIN));
        self.cmd(args)
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", ep.url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ep.request_token)
    }

    fn gitlab_token(&self) -> String {
        self.issuer.mint(json!({
            "sub": format!("project_path:{REPO}:ref_type:branch:ref:main"),
            "aud": "fluxloop",
            "project_path": REPO,
            "ref": "main",
            "ref_type": "branch",
            "pipeline_source": "push",
        }))
    }

    fn write_job(&self, command: &str) {
        self.sb.write(
            "fluxloop.yaml",
            &format!("scenario: support-bot\nrunner:\n  command: {command}\n"),
        );
    }

    fn exchanges(&self) -> usize {
        self.p()
            .requests()
            .iter()
            .filter(|r| r.path == "/api/auth/oidc/exchange")
            .count()
    }

    #[track_caller]
    fn assert_one_batch_of(&self, runs: usize) {
        let batches = self.p().batch_ids().unwrap();
        assert_eq!(batches.len(), 1, "{batches:?}");
        assert_eq!(self.p().run_count(&batches[0]).unwrap(), runs);
    }

    /// The access token lives in memory only: nothing under FLUXLOOP_HOME.
    #[track_caller]
    fn assert_home_untouched(&self) {
        let home = self.sb.fluxloop_home();
        let files: Vec<_> = std::fs::read_dir(&home)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(files.is_empty(), "{files:?} in {}", home.display());
    }

    fn normalise(&self, text: &str) -> String {
        text.replace(&self.p().url(), "[SERVER]")
    }
}

fn echo_agent() -> String {
    format!("[\"echo\", '{ECHO_OK}']")
}

/// No JWT (`eyJ…`) and no whole access token in either stream.
#[track_caller]
fn no_tokens(r: &Run) {
    for stream in [&r.stdout, &r.stderr] {
        assert!(!stream.contains("eyJ"), "a JWT was printed:\n{stream}");
        assert!(
            !stream.contains("flx_oidc_"),
            "an access token was printed:\n{stream}"
        );
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn regression_19_a_github_job_pulls_tests_and_uploads_with_no_key() {
    let k = Keyless::new();
    k.write_job(&echo_agent());
    let r = k.github(&["test", "--no-skip-upload", "--yes"]).run();
    r.ok();
    no_tokens(&r);
    k.assert_one_batch_of(10);
    k.assert_home_untouched();
    assert_eq!(k.exchanges(), 1);
}

#[test]
fn regression_19_a_gitlab_job_pulls_tests_and_uploads_with_its_id_token() {
    let k = Keyless::new();
    k.write_job(&echo_agent());
    let jwt = k.gitlab_token();
    let r = k
        .cmd(&["test", "--no-skip-upload", "--yes"])
        .env("FLUXLOOP_ID_TOKEN", &jwt)
        .run();
    r.ok();
    r.no_secret(&jwt);
    no_tokens(&r);
    k.assert_one_batch_of(10);
    k.assert_home_untouched();
}

#[test]
fn regression_19_auth_status_from_a_token_file() {
    let k = Keyless::new();
    let file = k.sb.write(
        "sa-token",
        &k.issuer
            .mint(json!({"sub": "system:serviceaccount:ci:runner", "aud": "fluxloop"})),
    );
    let r = k
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_OIDC_TOKEN_FILE", &file)
        .run();
    r.ok();
    no_tokens(&r);
    let masked = r.stdout.lines().next().unwrap().to_string();
    // substring: the token's last four characters are random.
    assert!(masked.starts_with("Credential:  flx_****"), "{masked}");
    assert_eq!(
        k.normalise(&r.stdout),
        format!(
            "{masked}
From:        OIDC token (FLUXLOOP_OIDC_TOKEN_FILE) (system:serviceaccount:ci:runner), scope read-write, expires in 59 min
Endpoint:    [SERVER] (from environment variable FLUXLOOP_API_ENDPOINT)
Profile:     default (from default)
Status:      ✓ valid
"
        )
    );
    assert_eq!(r.stderr, "");
    // The file is read again for the next exchange: a rotated token works.
    std::fs::write(
        &file,
        k.issuer
            .mint(json!({"sub": "system:serviceaccount:ci:runner", "aud": "fluxloop"})),
    )
    .unwrap();
    let r = k
        .cmd(&["auth", "status", "--json"])
        .env("FLUXLOOP_OIDC_TOKEN_FILE", &file)
        .run();
    r.ok();
    let v = r.json();
    assert_eq!(v["kind"], "OIDC access token");
    assert_eq!(v["origin_kind"], "oidc");
    let oidc = &v["oidc"];
    assert_eq!(oidc["source"], "OIDC token (FLUXLOOP_OIDC_TOKEN_FILE)");
    assert_eq!(oidc["subject"], "system:serviceaccount:ci:runner");
    assert_eq!(oidc["scope"], "read-write");
    assert_eq!(oidc["project_id"], json!(k.demo.project_id));
    assert!(
        oidc["expires_at"].as_str().unwrap().ends_with('Z'),
        "{oidc}"
    );
    k.assert_home_untouched();
}

#[test]
fn regression_19_github_status_masks_both_tokens_first_and_auth_token_prints_it() {
    let k = Keyless::new();
    let r = k
        .github(&["auth", "status"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    // substring: the two masked values are fresh tokens.
    assert!(lines[0].starts_with("::add-mask::eyJ"), "{}", r.stdout);
    assert!(
        lines[1].starts_with("::add-mask::flx_oidc_"),
        "{}",
        r.stdout
    );
    assert_eq!(
        lines[3],
        format!("From:        GitHub Actions OIDC (repo:{REPO}:ref:{MAIN}), scope read-write, expires in 59 min")
    );
    let rest = lines[2..].join("\n");
    assert!(
        !rest.contains("eyJ") && !rest.contains("flx_oidc_"),
        "{rest}"
    );

    // Traced requests show neither token, nor the request token.
    let ep = k.issuer.github_token_endpoint(github_claims(REPO, MAIN));
    let r = k
        .cmd(&["-v", "auth", "status"])
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &ep.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &ep.request_token)
        .run();
    r.ok();
    r.no_secret(&ep.request_token);
    no_tokens(&r);

    let r = k
        .github(&["auth", "token"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.ok();
    let token = r.stdout.trim_end();
    // substring: the token is fresh.
    assert!(token.starts_with("flx_oidc_"), "{token}");
    let masks: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(masks.len(), 2, "{}", r.stderr);
    // substring: the identity token is fresh.
    assert!(masks[0].starts_with("::add-mask::eyJ"), "{}", r.stderr);
    assert_eq!(masks[1], format!("::add-mask::{token}"));
}

#[test]
fn regression_19_a_long_job_exchanges_again_before_the_upload() {
    // Every token expires within the 2 minute window at once: each stage
    // exchanges again, and the upload after expiry too.
    let k = Keyless::with_ttl(Duration::from_secs(2));
    k.write_job("\"sleep 0.4; echo '{\\\"success\\\":true,\\\"output\\\":\\\"ok\\\"}'\"");
    let r = k.github(&["test", "--no-skip-upload", "--yes"]).run();
    r.ok();
    no_tokens(&r);
    k.assert_one_batch_of(10);
    assert!(k.exchanges() >= 2, "{} exchanges", k.exchanges());
    k.assert_home_untouched();
}

#[test]
fn regression_19_a_fixed_token_is_not_sent_twice_and_a_replay_is_refused() {
    let k = Keyless::new();
    let jwt = k.gitlab_token();
    k.cmd(&["auth", "status"])
        .env("FLUXLOOP_ID_TOKEN", &jwt)
        .run()
        .ok();
    let r = k
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_ID_TOKEN", &jwt)
        .run();
    r.code(3);
    r.no_secret(&jwt);
    assert_eq!(
        first_line(&r),
        format!("error: the platform rejected the CI's OIDC token (replayed): this token was already exchanged (jti {}); request a fresh one",
        jti_of(&jwt))
    );
}

/// The `jti` claim of `jwt`, read without checking anything.
fn jti_of(jwt: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

fn first_line(r: &Run) -> String {
    r.stderr.lines().next().unwrap_or_default().to_string()
}

/// The rejection of `jwt` (given as FLUXLOOP_OIDC_TOKEN): exit 3, the
/// reason on the first line, the claims below, and never the token.
#[track_caller]
fn rejected(k: &Keyless, jwt: &str, reason: &str) -> Run {
    let r = k
        .cmd(&["sync", "pull", "--yes"])
        .env("FLUXLOOP_OIDC_TOKEN", jwt)
        .run();
    r.code(3);
    r.no_secret(jwt);
    no_tokens(&r);
    let first = first_line(&r);
    // substring: the platform's wording of each reason is its own.
    assert!(
        first.starts_with(&format!(
            "error: the platform rejected the CI's OIDC token ({reason}): "
        )),
        "{}",
        r.stderr
    );
    r
}

fn claims_of(r: &Run) -> Vec<String> {
    r.stderr
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("hint:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn regression_19_refusals_name_the_reason_and_the_claims() {
    let k = Keyless::new();
    let claims = |extra: Value| {
        let mut c = github_claims(REPO, MAIN);
        c["aud"] = json!("fluxloop");
        for (name, v) in extra.as_object().unwrap() {
            c[name] = v.clone();
        }
        c
    };
    let t = now();
    let expired = k.issuer.mint(claims(
        json!({"exp": t - 3600, "iat": t - 7200, "nbf": t - 7200}),
    ));
    let r = rejected(&k, &expired, "expired");
    assert_eq!(
        claims_of(&r),
        vec![
            format!("  issuer:      {}", k.issuer.url()),
            format!("  subject:     repo:{REPO}:ref:{MAIN}"),
            "  audience:    fluxloop".to_string(),
            format!("  repository:  {REPO}"),
            format!("  ref:         {MAIN}"),
            "  event:       push".to_string(),
            "  ref_type:    branch".to_string(),
            format!("  job_workflow_ref: {REPO}/.github/workflows/ci.yml@{MAIN}"),
        ]
    );
    let _ = rejected(
        &k,
        &k.issuer.mint(claims(json!({"aud": "other"}))),
        "audience_mismatch",
    );
    let stranger = Issuer::start();
    let r = rejected(&k, &stranger.mint(claims(json!({}))), "issuer_not_trusted");
    assert_eq!(
        claims_of(&r)[0],
        format!("  issuer:      {}", stranger.url())
    );
    let fork =
        claims(json!({"sub": "repo:evil/fork:ref:refs/heads/main", "repository": "evil/fork"}));
    let r = rejected(&k, &k.issuer.mint(fork), "no_matching_policy");
    assert_eq!(
        r.stderr.lines().last().unwrap(),
        "  hint: the issuer is trusted but no policy's conditions match the claims above: check the policy's sub pattern (and ref, environment) with `fluxloop-platform trust list`"
    );
    let _ = rejected(
        &k,
        &tamper(&k.issuer.mint(claims(json!({})))),
        "bad_signature",
    );
    let _ = rejected(
        &k,
        &k.issuer.forge_alg_none(claims(json!({}))),
        "unsupported_alg",
    );
    let _ = rejected(
        &k,
        &k.issuer.forge_hs256_with_public_key(claims(json!({}))),
        "unsupported_alg",
    );
    // An unknown kid is refused until the issuer publishes it (rotation).
    let rotated = k.issuer.new_key("rsa-2", KeyKind::Rsa);
    let early = k.issuer.mint_with(rotated.clone(), claims(json!({})));
    let _ = rejected(&k, &early, "unknown_kid");
    k.issuer.publish("rsa-2");
    let later = k.issuer.mint_with(rotated, claims(json!({})));
    k.cmd(&["auth", "status"])
        .env("FLUXLOOP_OIDC_TOKEN", &later)
        .run()
        .ok();
    k.assert_home_untouched();
}

#[test]
fn regression_19_github_without_id_token_permission_says_so() {
    let k = Keyless::new();
    let r = k
        .cmd(&["sync", "pull", "--yes", "--oidc"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: OIDC is required (from --oidc) but this GitHub Actions job cannot request an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set\n  hint: add `permissions: id-token: write` to the job (or the workflow)\n"
    );
}

#[test]
fn regression_19_oidc_required_with_no_token_anywhere() {
    let k = Keyless::new();
    let r = k.cmd(&["auth", "status", "--oidc"]).run();
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: OIDC is required (from --oidc) but no OIDC token was found\n  hint: GitHub Actions: `permissions: id-token: write`; GitLab: `id_tokens: FLUXLOOP_ID_TOKEN: aud: fluxloop`; elsewhere set FLUXLOOP_OIDC_TOKEN or FLUXLOOP_OIDC_TOKEN_FILE\n"
    );
}

#[test]
fn regression_19_a_failed_github_token_request_is_its_own_error() {
    let k = Keyless::new();
    let ep = k.issuer.github_token_endpoint(github_claims(REPO, MAIN));
    let r = k
        .cmd(&["sync", "pull", "--yes"])
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &ep.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token")
        .run();
    r.code(3);
    r.no_secret("not-the-request-token");
    // substring: the stand-in's 401 wording follows the prefix.
    assert!(
        r.stderr
            .starts_with("error: the GitHub Actions OIDC token request failed: "),
        "{}",
        r.stderr
    );
    assert_eq!(k.exchanges(), 0);
}

#[test]
fn regression_19_auto_mode_falls_back_to_a_key_file_with_a_warning() {
    let k = Keyless::new();
    k.sb.write("key.txt", &k.demo.key);
    k.sb.write("fluxloop.yaml", "api:\n  key_file: key.txt\n");
    let stranger = Issuer::start();
    let jwt = stranger.mint(json!({"sub": "x", "aud": "fluxloop"}));
    let r = k
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_OIDC_TOKEN", &jwt)
        .run();
    r.ok();
    r.no_secret(&jwt);
    let first = first_line(&r);
    // substring: the platform's wording of the reason sits in the middle.
    assert!(
        first.starts_with("warning: the OIDC token (FLUXLOOP_OIDC_TOKEN) exchange failed (the platform rejected the CI's OIDC token (issuer_not_trusted): ")
            && first.ends_with(&format!("); using the credential from key file {} instead", k.sb.work().join("key.txt").display())),
        "{first}"
    );
    // Forced, the same refusal is fatal.
    let r = k
        .cmd(&["auth", "status", "--oidc"])
        .env(
            "FLUXLOOP_OIDC_TOKEN",
            stranger.mint(json!({"sub": "x", "aud": "fluxloop"})),
        )
        .run();
    r.code(3);
}

#[test]
fn regression_19_doctor_names_the_oidc_identity_and_its_scope() {
    let k = Keyless::new();
    k.write_job(&echo_agent());
    let r = k.github(&["doctor", "--json"]).run();
    let v = r.json();
    no_tokens(&r);
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {v}"))
            .clone()
    };
    let credential = check("credential");
    let detail = credential["detail"].as_str().unwrap();
    let masked = detail.split(' ').nth(3).unwrap();
    // substring: the token's last four characters are random.
    assert!(masked.starts_with("flx_****"), "{detail}");
    assert_eq!(
        credential,
        json!({
            "name": "credential",
            "status": "ok",
            "detail": format!("OIDC access token {masked} from GitHub Actions OIDC (repo:{REPO}:ref:{MAIN}), scope read-write, expires in 59 min"),
        })
    );
    assert_eq!(check("scope")["status"], "ok", "{v}");
}

#[test]
fn regression_19_an_endpoint_named_by_the_repository_is_warned_of_before_the_exchange() {
    let k = Keyless::new();
    k.sb.write(
        "fluxloop.yaml",
        &format!("api:\n  endpoint: {}\n", k.p().url()),
    );
    let r = k
        .github(&["auth", "status"])
        .env_remove("FLUXLOOP_API_ENDPOINT")
        .run();
    r.ok();
    assert_eq!(
        k.normalise(&r.stderr),
        format!(
            "warning: sending the credential from GitHub Actions OIDC to [SERVER], an endpoint named by api.endpoint in {}\n",
            k.sb.work().join("fluxloop.yaml").display()
        )
    );
    assert_eq!(k.exchanges(), 1);
}
