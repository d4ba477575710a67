//! `auth` and `apikeys` end to end against the local platform.

use std::time::Duration;

use fluxloop_platform::{Config, Platform};

use crate::util::{platform, PendingLogin, Run, Sandbox};

/// Runs `auth login --no-browser` and approves (or denies) the code the CLI
/// prints, the way a person would in the browser.
fn login(sb: &Sandbox, p: &Platform, extra: &[&str], approve: bool) -> Run {
    let mut args = vec!["auth", "login", "--no-browser"];
    args.extend_from_slice(extra);
    let pending = PendingLogin::start(sb.cmd(&args));
    assert!(
        // substring: the URL ends with the flow's random user code
        pending.url.contains("/device?user_code="),
        "{}",
        pending.seen
    );
    if approve {
        p.approve_device(&pending.code).unwrap();
    } else {
        p.deny_device(&pending.code).unwrap();
    }
    pending.finish()
}

fn creds(sb: &Sandbox) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap()
}

fn token(sb: &Sandbox, profile: &str, field: &str) -> String {
    creds(sb)["profiles"][profile][field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn device_login_stores_the_tokens_and_status_shows_them() {
    let p = platform();
    let sb = Sandbox::new();
    let r = login(&sb, &p, &["--endpoint", &p.url()], true);
    r.ok();
    assert_eq!(
        r.stdout,
        format!(
            "✅ Successfully authenticated as demo@fluxloop.local\nProfile default ({}) stored in {}\n",
            p.url(),
            sb.credentials_path().display()
        )
    );
    let access = token(&sb, "default", "access_token");
    let refresh = token(&sb, "default", "refresh_token");
    assert!(access.starts_with("flx_at_"), "{access}");
    assert!(refresh.starts_with("flx_refresh_"));
    assert_eq!(creds(&sb)["profiles"]["default"]["api_endpoint"], p.url());
    r.no_secret(&access).no_secret(&refresh);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.credentials_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let s = sb.cmd(&["auth", "status"]).run();
    s.ok()
        // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
        .stdout_has("(login)")
        .stdout_has("User:        demo@fluxloop.local")
        .stdout_has("✓ valid")
        .stdout_has(&format!("Endpoint:    {}", p.url()))
        .no_secret(&access);
    let j = sb.cmd(&["whoami", "--json"]).run();
    j.ok().no_secret(&access);
    let v = j.json();
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["origin_kind"], "profile");
    assert_eq!(v["user_email"], "demo@fluxloop.local");

    // Already logged in: nothing happens without --force.
    let r = sb.cmd(&["auth", "login", "--no-browser"]).run();
    assert_eq!(
        r.ok().stdout,
        format!(
            "Already logged in as demo@fluxloop.local (profile default, {}).\nRun `fluxloop auth login --force` to log in again.\n",
            p.url()
        )
    );
    let again = login(&sb, &p, &["--force"], true);
    again.ok();
    assert_ne!(token(&sb, "default", "access_token"), access);
}

#[test]
fn denied_login_fails_with_authentication_failed() {
    let p = platform();
    let sb = Sandbox::new();
    let r = login(&sb, &p, &["--endpoint", &p.url()], false);
    r.code(3)
        // substring: the lines before it print the device URL and a random user code
        .stderr_has("error: Authentication failed: the login was denied in the browser");
    assert!(!sb.credentials_path().exists());
}

#[test]
fn unreachable_platform_is_authentication_failed_with_the_checklist_and_exit_4() {
    let sb = Sandbox::new();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let r = sb
        .cmd(&["auth", "login", "--no-browser", "--endpoint", &url])
        .env("FLUXLOOP_HTTP_RETRIES", "0")
        .run();
    // A network problem (exit 4), worded as the seed's "Authentication failed".
    r.code(4);
    assert_eq!(
        r.stderr,
        format!("error: Authentication failed: cannot reach {url}/api/cli-connect/start: connection refused\n  hint: check: 1. browser opened? 2. network connection? 3. ad blockers disabled? (and the endpoint: `fluxloop config get endpoint`)\n")
    );
}

#[test]
fn two_profiles_on_two_platforms() {
    let production = platform();
    let staging = platform();
    let sb = Sandbox::new();
    login(
        &sb,
        &production,
        &["--profile", "production", "--endpoint", &production.url()],
        true,
    )
    .ok();
    login(
        &sb,
        &staging,
        &["--profile", "staging", "--endpoint", &staging.url()],
        true,
    )
    .ok();

    let endpoint = |args: &[&str]| sb.cmd(args).run();
    assert_eq!(
        endpoint(&["config", "get", "endpoint", "--profile", "staging"])
            .ok()
            .stdout,
        format!("{}\n", staging.url())
    );
    assert_eq!(
        endpoint(&["config", "get", "endpoint", "--profile", "production"])
            .ok()
            .stdout,
        format!("{}\n", production.url())
    );
    let r = sb
        .cmd(&["config", "get", "endpoint"])
        .env("FLUXLOOP_PROFILE", "staging")
        .run();
    assert_eq!(r.ok().stdout, format!("{}\n", staging.url()));

    sb.cmd(&["config", "set", "profile", "staging"]).run().ok();
    let s = sb.cmd(&["auth", "status"]).run();
    s.ok()
        // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
        .stdout_has(&staging.url())
        .stdout_has("Profile:     staging");
    sb.cmd(&["auth", "status", "--profile", "production"])
        .run()
        .ok()
        // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
        .stdout_has(&production.url());

    // Logging out of one profile keeps the other.
    assert_eq!(
        sb.cmd(&["auth", "logout"]).run().ok().stdout,
        "Logged out of profile staging: the platform ended the session\n"
    );
    assert_eq!(token(&sb, "staging", "access_token"), "");
    assert!(!token(&sb, "production", "access_token").is_empty());
    assert_eq!(
        sb.cmd(&["auth", "logout"]).run().ok().stdout,
        "Not logged in (profile staging); nothing to remove\n"
    );
    assert_eq!(
        sb.cmd(&["auth", "logout", "--all"]).run().ok().stdout,
        "Logged out of profile production: the platform ended the session\n"
    );
    assert_eq!(sb.cmd(&["auth", "status"]).run().code(3).stderr, "error: no credential found\n  hint: pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN\n  hint: or set api.key_file in fluxloop.yaml\n  hint: or run `fluxloop auth login` to store a login in the credentials file\n");
}

#[test]
fn expiring_token_is_refreshed_and_a_dead_refresh_token_says_token_expired() {
    // Tokens that live 60 s are always inside the 5-minute refresh window.
    let p = Platform::start(Config {
        poll_interval_secs: 1,
        access_token_ttl: Duration::from_secs(60),
        ..Config::default()
    })
    .unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &["--endpoint", &p.url()], true).ok();
    let before = std::fs::read_to_string(sb.credentials_path()).unwrap();
    let old_access = token(&sb, "default", "access_token");
    let old_refresh = token(&sb, "default", "refresh_token");

    let s = sb.cmd(&["auth", "status"]).run();
    s.ok()
        // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
        .stdout_has("Refreshed:")
        .no_secret(&old_access)
        .no_secret(&old_refresh);
    let new_refresh = token(&sb, "default", "refresh_token");
    assert_ne!(new_refresh, old_refresh, "refresh tokens rotate");

    sb.cmd(&["auth", "refresh"])
        .run()
        .ok()
        // substring: the rest is the new token's expiry time, which moves with the clock
        .stdout_has("Refreshed the login of profile default");

    // The old refresh token was rotated away: put the old file back.
    std::fs::write(sb.credentials_path(), before).unwrap();
    let r = sb.cmd(&["auth", "refresh"]).run();
    assert_eq!(r.code(3).stderr, "error: Token expired: the login of profile default has expired and its refresh token is no longer valid\n  hint: run `fluxloop auth login` to log in again\n");
    let r = sb.cmd(&["auth", "status"]).run();
    // substring: the rest holds the token's random last four characters, the sandbox path and an expiry time that moves with the clock
    r.code(3).stdout_has("✗ expired");
}

#[test]
fn key_rotation_create_switch_revoke() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let admin = p
        .create_key(&demo.project_id, "admin", "service-account", "admin")
        .unwrap()
        .key;
    let sb = Sandbox::new();
    let with = |key: &str, args: &[&str]| {
        sb.cmd(args)
            .env("FLUXLOOP_API_KEY", key)
            .env("FLUXLOOP_API_ENDPOINT", p.url())
            .run()
    };

    let created = with(
        &admin,
        &[
            "apikeys",
            "create",
            "--name",
            "ci-bot",
            "--type",
            "service-account",
            "--scope",
            "read-write",
        ],
    );
    created
        .ok()
        // substring: the rest is the platform-generated key id
        .stderr_has("Created service-account key ci-bot")
        .no_secret(&admin);
    let new_key = created.stdout.trim().to_string();
    assert!(
        new_key.starts_with("flx_sa_"),
        "stdout is the key alone: {:?}",
        created.stdout
    );
    assert_eq!(created.stdout.lines().count(), 1);

    with(&new_key, &["auth", "status"])
        .ok()
        // substring: the rest holds the key's random last four characters and platform-generated key and project ids
        .stdout_has("✓ valid")
        .stdout_has("Scope:       read-write")
        .no_secret(&new_key);

    let old = demo.key.clone();
    let list = with(&admin, &["apikeys", "list"]);
    list.ok()
        // substring: the rows start with platform-generated key ids
        .stdout_has("ci-bot")
        .stdout_has("LAST USED")
        .no_secret(&old)
        .no_secret(&new_key);

    with(&admin, &["apikeys", "revoke", &old])
        .code(2)
        // substring: the question names the key by its random last four characters
        .stderr_has("--yes");
    let revoked = with(&admin, &["apikeys", "revoke", &old, "--yes"]);
    // substring: the rest is the platform-generated key id
    revoked.ok().stdout_has("Revoked key").no_secret(&old);

    let info = with(&admin, &["apikeys", "info", &old]);
    info.code(3)
        // substring: the rest names the key by its random last four characters
        .stdout_has("Status:       revoked")
        .no_secret(&old);
    let status = with(&old, &["auth", "status"]);
    // substring: the rest holds the key's random last four characters and the server's random port
    status.code(3).stdout_has("✗ revoked");
    let r = with(&old, &["apikeys", "list"]);
    assert_eq!(
        r.code(3).stderr,
        "error: Invalid API key (from environment variable FLUXLOOP_API_KEY): key revoked\n  hint: create a new key with `fluxloop apikeys create --name NAME --scope read-write` and update FLUXLOOP_API_KEY\n"
    );
}

#[test]
fn info_shows_usage_and_scope() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    for _ in 0..3 {
        sb.cmd(&["auth", "status"])
            .env("FLUXLOOP_API_KEY", &demo.key)
            .env("FLUXLOOP_API_ENDPOINT", p.url())
            .run()
            .ok();
    }
    let r = sb
        .cmd(&["apikeys", "info", &demo.key])
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    r.ok()
        // substring: the rest holds platform-generated ids and creation times
        .stdout_has("Scope:        read-write")
        .stdout_has("Type:         service-account")
        .stdout_has("Usage count:  4 requests")
        .stdout_has("Status:       active")
        .no_secret(&demo.key);
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stdout.contains("Last used:    never"), "{}", r.stdout);
    let j = sb
        .cmd(&["apikeys", "info", "--json"])
        .env("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    j.ok().no_secret(&demo.key);
    assert_eq!(j.json()["usage_count"], 5);
}

#[test]
fn admin_operations_need_an_admin_key_and_fail_before_acting() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["apikeys", "create", "--name", "x"])
        .env("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    assert_eq!(
        r.code(3).no_secret(&demo.key).stderr,
        "error: Permission denied: this key has scope `read-write`, the operation needs `admin`\n  hint: managing keys needs a login or an admin key: use your login with --profile NAME (after `fluxloop auth login --profile NAME`), or pass an admin key with --api-key\n"
    );
    assert!(
        p.requests().iter().all(|q| q.path != "/api/api-keys"),
        "no create request may be sent: {:?}",
        p.requests()
    );
}

#[test]
fn admin_key_in_ci_gets_a_warning() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let admin = p
        .create_key(&demo.project_id, "admin", "user", "admin")
        .unwrap()
        .key;
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["apikeys", "list"])
        .env("CI", "true")
        .env("FLUXLOOP_API_KEY", &admin)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    assert_eq!(
        r.ok().no_secret(&admin).stderr,
        "warning: an admin key is used in CI; a read-write key is enough: `fluxloop apikeys create --scope read-write`, then revoke the admin key\n"
    );
}

#[test]
fn invalid_key_format_is_rejected_before_any_request() {
    let p = platform();
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_API_KEY", "flx_old_key")
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    assert_eq!(r.code(3).stderr, "error: Invalid API key (from environment variable FLUXLOOP_API_KEY): it does not start with flx_api_ or flx_sa_\n  hint: an API key looks like flx_api_… or flx_sa_… followed by at least 20 characters of A-Z a-z 0-9 _ -; compare its first characters (`printf %.8s \"$FLUXLOOP_API_KEY\"`) with the key on the platform (settings/api-keys)\n");
    assert!(p.requests().is_empty());
}

#[test]
fn github_actions_masks_profile_tokens_first() {
    let p = platform();
    let sb = Sandbox::new();
    login(&sb, &p, &["--endpoint", &p.url()], true).ok();
    let access = token(&sb, "default", "access_token");
    let r = sb
        .cmd(&["auth", "status"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.ok();
    assert!(
        r.stdout.starts_with(&format!("::add-mask::{access}\n")),
        "the mask must come before anything else: {}",
        r.stdout.lines().next().unwrap_or("")
    );
}
