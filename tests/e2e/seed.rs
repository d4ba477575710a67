//! The user's document (`shared/seed/authentication.txt`), walked line by
//! line: each sequence of commands is copied from it into a shell script and
//! run with the real binary on PATH against local platforms, with only the
//! placeholders (`flx_api_...`, the hosted URLs) replaced by real values.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fluxloop_platform::{Demo, Platform};

use crate::fixtures::{newest_result_dir, ECHO_OK};
use crate::util::{platform, PendingLogin, Sandbox};

/// The directory holding the `fluxloop` binary under test.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_fluxloop"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A seed snippet, run by `sh -e` in the sandbox's work directory with
/// `fluxloop` on PATH and nothing from this process's environment but PATH.
fn sh(sb: &Sandbox, script: &str, env: &[(&str, &str)]) -> Output {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-ec")
        .arg(script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", sb.home())
        .env("FLUXLOOP_HOME", sb.fluxloop_home())
        .current_dir(sb.work());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A workspace whose agent answers at once: the seed's `fluxloop test`
/// needs a runner, which the seed leaves to fluxloop.yaml.
fn workspace(sb: &Sandbox, extra: &str) {
    sb.write(
        "fluxloop.yaml",
        &format!("scenario: support-bot\nrunner:\n  command: [\"echo\", {ECHO_OK:?}]\n{extra}"),
    );
}

/// Runs `fluxloop auth login` as the seed shows it and authorizes it "in the
/// browser" (the platform's approval, as the device page does).
fn browser_login(sb: &Sandbox, p: &Platform, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = sb.cmd(args);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let pending = PendingLogin::start(cmd);
    p.approve_device(&pending.code).unwrap();
    let r = pending.finish();
    r.ok();
    r.stdout
}

fn batches(p: &Platform) -> usize {
    p.batch_ids().unwrap().len()
}

/// The three methods (interactive login, API key, service account), and the
/// credentials file they leave.
#[test]
fn seed_authentication_methods() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    workspace(&sb, "");
    let endpoint = p.url();
    let env = [("FLUXLOOP_API_ENDPOINT", endpoint.as_str())];

    // fluxloop auth login → ✅ Successfully authenticated
    let out = browser_login(&sb, &p, &["auth", "login"], &env);
    assert_eq!(
        out,
        format!(
            "✅ Successfully authenticated as demo@fluxloop.local\nProfile default ({endpoint}) stored in {}\n",
            sb.credentials_path().display()
        )
    );
    // Credentials stored in ~/.fluxloop/credentials: the seed's fields.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    let login = &doc["profiles"]["default"];
    assert!(login["access_token"].as_str().unwrap().starts_with("flx_"));
    assert!(login["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("flx_refresh_"));
    assert!(login["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(login["user_email"], demo.user_email);
    assert_eq!(doc["default_profile"], "default");

    // 2. API key: created on the web platform, then
    //    export FLUXLOOP_API_KEY=flx_api_...; fluxloop test --no-skip-upload
    let web_key = p
        .create_key(&demo.project_id, "web-key", "user", "read-write")
        .unwrap();
    let before = batches(&p);
    ok(&sh(
        &sb,
        &format!(
            "export FLUXLOOP_API_KEY={}\nfluxloop test --no-skip-upload\n",
            web_key.key
        ),
        &env,
    ));
    assert_eq!(batches(&p), before + 1);

    // 3. Service account: the admin (the login) creates it; CI uses it.
    let script = "fluxloop apikeys create \\\n--name \"ci-bot\" \\\n--type service-account \\\n--scope read-write\n";
    let key = ok(&sh(&sb, script, &env));
    assert!(
        key.starts_with("flx_sa_") && key.ends_with('\n') && key.lines().count() == 1,
        "{key}"
    );
    ok(&sh(
        &sb,
        &format!(
            "export FLUXLOOP_API_KEY={}\nfluxloop sync pull --yes\n",
            key.trim()
        ),
        &env,
    ));
}

/// Configuration: the credentials file of the seed, and Multiple Profiles.
#[test]
fn seed_profiles() {
    let production = platform();
    let staging = platform();
    production.seed_demo().unwrap();
    staging.seed_demo().unwrap();
    let sb = Sandbox::new();
    workspace(&sb, "");
    // The seed's file, with its hosted URLs replaced by the two platforms.
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    let seed_file = format!(
        r#"{{
"default_profile": "production",
"profiles": {{
"production": {{
"access_token": "flx_...",
"refresh_token": "flx_refresh_...",
"expires_at": "2024-11-02T10:00:00Z",
"api_endpoint": "{}"
}},
"staging": {{
"access_token": "flx_...",
"api_endpoint": "{}"
}}
}}
}}"#,
        production.url(),
        staging.url()
    );
    std::fs::write(sb.credentials_path(), seed_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(sb.fluxloop_home(), std::fs::Permissions::from_mode(0o700)).unwrap();

    // # Login to production / # Login to staging
    browser_login(
        &sb,
        &production,
        &["auth", "login", "--profile", "production"],
        &[],
    );
    browser_login(
        &sb,
        &staging,
        &["auth", "login", "--profile", "staging"],
        &[],
    );
    // # Use specific profile
    let (p_before, s_before) = (batches(&production), batches(&staging));
    ok(&sh(
        &sb,
        "fluxloop test --profile staging --no-skip-upload\n",
        &[],
    ));
    assert_eq!(
        (batches(&production), batches(&staging)),
        (p_before, s_before + 1)
    );
    // # Set default profile
    let out = ok(&sh(&sb, "fluxloop config set profile staging\n", &[]));
    assert_eq!(
        out,
        format!(
            "Set profile to staging in {}\n",
            sb.credentials_path().display()
        )
    );
    ok(&sh(&sb, "fluxloop test --no-skip-upload\n", &[]));
    assert_eq!(
        (batches(&production), batches(&staging)),
        (p_before, s_before + 2)
    );
    // FLUXLOOP_PROFILE from the seed's variable table.
    ok(&sh(
        &sb,
        "FLUXLOOP_PROFILE=production fluxloop test --no-skip-upload\n",
        &[],
    ));
    assert_eq!(batches(&production), p_before + 1);
}

/// API Keys: create via CLI, the three ways to use one, rotation, and the
/// security practices.
#[test]
fn seed_api_keys() {
    let p = platform();
    let demo: Demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    let endpoint = p.url();
    let env = [("FLUXLOOP_API_ENDPOINT", endpoint.as_str())];
    browser_login(&sb, &p, &["auth", "login"], &env);

    // Via CLI: fluxloop apikeys create --name "my-cli-key"
    let key = ok(&sh(
        &sb,
        "fluxloop apikeys create --name \"my-cli-key\"\n",
        &env,
    ));
    let key = key.trim().to_string();
    assert!(key.starts_with("flx_api_"), "{key}");

    // Environment variable (Recommended)
    workspace(&sb, "");
    let before = batches(&p);
    ok(&sh(
        &sb,
        &format!("export FLUXLOOP_API_KEY={key}\nfluxloop test --no-skip-upload\n"),
        &env,
    ));
    // Config file: api.key_file: ~/.fluxloop/api_key.txt
    std::fs::write(sb.fluxloop_home().join("api_key.txt"), format!("{key}\n")).unwrap();
    workspace(&sb, "api:\n  key_file: ~/.fluxloop/api_key.txt\n");
    ok(&sh(
        &sb,
        "fluxloop auth logout\nfluxloop test --no-skip-upload\n",
        &env,
    ));
    // Command line
    workspace(&sb, "");
    ok(&sh(
        &sb,
        &format!("fluxloop test --api-key {key} --no-skip-upload\n"),
        &env,
    ));
    assert_eq!(batches(&p), before + 3);

    // Rotate API Keys, as written: create with the login, switch, revoke
    // the old key while the new read-write key is in the environment.
    browser_login(&sb, &p, &["auth", "login"], &env);
    let new = ok(&sh(
        &sb,
        "fluxloop apikeys create --name \"new-key\"\n",
        &env,
    ));
    let new = new.trim();
    let out = sh(
        &sb,
        &format!("export FLUXLOOP_API_KEY={new}\nfluxloop apikeys revoke {key} --yes\n"),
        &env,
    );
    let text = ok(&out);
    assert!(text.starts_with("Revoked key my-cli-key (id "), "{text}");
    // Revoking it again says so.
    let again = ok(&sh(
        &sb,
        &format!("export FLUXLOOP_API_KEY={new}\nfluxloop apikeys revoke {key} --yes\n"),
        &env,
    ));
    assert_eq!(
        again,
        format!("Key {} was already revoked; nothing to do.\n", mask(&key))
    );
    // The old key no longer works; the new one does.
    let out = sh(
        &sb,
        &format!("fluxloop sync pull --yes --api-key {key}\n"),
        &env,
    );
    assert_eq!(out.status.code(), Some(3));
    ok(&sh(
        &sb,
        &format!("fluxloop sync pull --yes --api-key {new}\n"),
        &env,
    ));

    // Use Minimal Scopes: --scope read-write is sufficient.
    let rw = ok(&sh(
        &sb,
        "fluxloop apikeys create --scope read-write # Sufficient\n",
        &env,
    ));
    assert!(rw.starts_with("flx_api_"));
    // Monthly rotation
    let monthly = ok(&sh(
        &sb,
        "fluxloop apikeys create --name \"ci-bot-$(date +%Y%m)\"\n",
        &env,
    ));
    assert!(monthly.starts_with("flx_api_"));
    // Monitor Key Usage: last used and usage count.
    let info = ok(&sh(
        &sb,
        &format!("fluxloop apikeys info {}\n", monthly.trim()),
        &env,
    ));
    assert!(info.lines().any(|l| l.starts_with("Last used:")), "{info}");
    assert!(
        info.lines().any(|l| l.starts_with("Usage count:")),
        "{info}"
    );
    // Revoke Compromised Keys: revoke, then create a replacement.
    let out = ok(&sh(
        &sb,
        &format!(
            "# Immediately revoke\nfluxloop apikeys revoke {} --yes\n# Create new key\nfluxloop apikeys create --name \"replacement-key\"\n",
            monthly.trim()
        ),
        &env,
    ));
    let replacement = out.lines().last().unwrap();
    assert!(replacement.starts_with("flx_api_"), "{out}");
    let _ = demo;
}

fn mask(key: &str) -> String {
    let prefix = if key.starts_with("flx_sa_") {
        "flx_sa_"
    } else {
        "flx_api_"
    };
    format!("{prefix}****{}", &key[key.len() - 4..])
}

/// Troubleshooting: each problem of the seed gives its message.
#[test]
fn seed_troubleshooting() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    workspace(&sb, "");
    let endpoint = p.url();
    let env = [("FLUXLOOP_API_ENDPOINT", endpoint.as_str())];

    // Authentication Failed: the login cannot reach the platform.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = sh(
        &sb,
        "fluxloop auth login\n",
        &[
            ("FLUXLOOP_API_ENDPOINT", &dead),
            ("FLUXLOOP_HTTP_RETRIES", "0"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: Authentication failed"), "{err}");
    assert!(
        // substring: the checklist is the hint; the error line before it names the dead endpoint
        err.contains("1. browser opened? 2. network connection? 3. ad blockers disabled?"),
        "{err}"
    );

    // Token Expired: an expired login whose refresh token is dead.
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    std::fs::write(
        sb.credentials_path(),
        format!(r#"{{"profiles": {{"default": {{"access_token": "flx_at_old", "refresh_token": "flx_refresh_dead", "expires_at": "2020-01-01T00:00:00Z", "api_endpoint": "{endpoint}"}}}}}}"#),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(sb.fluxloop_home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = sh(&sb, "fluxloop test --no-skip-upload\n", &env);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "error: Token expired: the login of profile default has expired and its refresh token is no longer valid\n  hint: run `fluxloop auth login` to log in again\n"
    );
    // # Or login again
    browser_login(&sb, &p, &["auth", "login"], &env);
    // # Refresh automatically
    ok(&sh(&sb, "fluxloop auth refresh\n", &env));
    ok(&sh(&sb, "fluxloop test --no-skip-upload\n", &env));

    // Invalid API Key
    let out = sh(
        &sb,
        "export FLUXLOOP_API_KEY=flx_new_key...\nfluxloop test --no-skip-upload\n",
        &env,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: Invalid API key (from environment variable FLUXLOOP_API_KEY)"),
        "{err}"
    );

    // Permission Denied: a read key cannot upload; `apikeys info` shows its scope.
    let read = p
        .create_key(&demo.project_id, "reader", "user", "read")
        .unwrap();
    let out = sh(
        &sb,
        &format!(
            "export FLUXLOOP_API_KEY={}\nfluxloop sync upload\n",
            read.key
        ),
        &env,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "error: Permission denied: this key has scope `read`, the operation needs `write`\n  hint: create a key with the needed scope: `fluxloop apikeys create --scope read-write`\n"
    );
    let info = ok(&sh(
        &sb,
        &format!(
            "export FLUXLOOP_API_KEY={}\n# Check scope\nfluxloop apikeys info $FLUXLOOP_API_KEY\n",
            read.key
        ),
        &env,
    ));
    assert!(
        info.lines()
            .any(|l| l == "Scope:        read (view scenarios, criteria, results)"),
        "{info}"
    );
    // # Create key with correct scope (with the login)
    let created = ok(&sh(
        &sb,
        "fluxloop apikeys create --scope read-write\n",
        &env,
    ));
    assert!(created.starts_with("flx_api_"));
}

/// Environment Variables: FLUXLOOP_TOKEN is a direct access token.
#[test]
fn seed_environment_variables() {
    let p = platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    workspace(&sb, "");
    let endpoint = p.url();
    let env = [("FLUXLOOP_API_ENDPOINT", endpoint.as_str())];
    browser_login(&sb, &p, &["auth", "login"], &env);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    let token = doc["profiles"]["default"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&sh(&sb, "fluxloop auth logout\n", &env));
    let before = batches(&p);
    // logout ended the login on the platform: the token no longer works.
    let out = sh(
        &sb,
        "fluxloop test --no-skip-upload\n",
        &[
            ("FLUXLOOP_API_ENDPOINT", &endpoint),
            ("FLUXLOOP_TOKEN", &token),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    browser_login(&sb, &p, &["auth", "login"], &env);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    let token = doc["profiles"]["default"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(sb.credentials_path()).unwrap();
    ok(&sh(
        &sb,
        "fluxloop test --no-skip-upload\n",
        &[
            ("FLUXLOOP_API_ENDPOINT", &endpoint),
            ("FLUXLOOP_TOKEN", &token),
        ],
    ));
    assert_eq!(batches(&p), before + 1);
}

/// CI/CD Examples: the three snippets' commands, with the variables their
/// CI would set.
#[test]
fn seed_ci_examples() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    workspace(&sb, "");
    let endpoint = p.url();
    let ci = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut v = vec![("FLUXLOOP_API_ENDPOINT", endpoint.clone())];
        v.extend(extra.iter().cloned());
        v
    };
    let run = |script: &str, env: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ok(&sh(&sb, script, &pairs));
    };
    let before = batches(&p);
    // GitHub Actions: `env: FLUXLOOP_API_KEY: ${{ secrets.FLUXLOOP_API_KEY }}`, then `run: |`.
    let summary = sb.dir.path().join("step-summary.md");
    run(
        "fluxloop sync pull --yes\nfluxloop test --no-skip-upload --yes\n",
        ci(&[
            ("FLUXLOOP_API_KEY", demo.key.clone()),
            ("GITHUB_ACTIONS", "true".into()),
            ("CI", "true".into()),
            ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ]),
    );
    // GitLab CI: `variables: FLUXLOOP_API_KEY: $FLUXLOOP_API_KEY_SECRET`, then the script lines.
    run(
        "export FLUXLOOP_API_KEY=$FLUXLOOP_API_KEY\nfluxloop sync pull --yes\nfluxloop test --no-skip-upload --yes\n",
        ci(&[
            ("FLUXLOOP_API_KEY", demo.key.clone()),
            ("FLUXLOOP_API_KEY_SECRET", demo.key.clone()),
            ("GITLAB_CI", "true".into()),
            ("CI", "true".into()),
        ]),
    );
    // Jenkins: withCredentials binds FLUXLOOP_API_KEY for the two sh steps.
    for step in [
        "fluxloop sync pull --yes",
        "fluxloop test --no-skip-upload --yes",
    ] {
        run(
            step,
            ci(&[
                ("FLUXLOOP_API_KEY", demo.key.clone()),
                ("JENKINS_URL", "http://127.0.0.1:1/".into()),
                ("BUILD_URL", "http://127.0.0.1:1/job/x/1/".into()),
            ]),
        );
    }
    assert_eq!(batches(&p), before + 3);
    assert!(newest_result_dir(&sb).join("junit.xml").is_file());
    assert!(std::fs::read_to_string(&summary)
        .unwrap()
        // substring: the rest of the step summary holds timings
        .contains("FluxLoop: support-bot"));
}
