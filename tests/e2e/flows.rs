//! Issue 16: the seed's flows with no surprises: profiles, logins in CI,
//! credentials files that are not needed, key rotation and revocation,
//! colour and small CLI behaviours. Each compares the output exactly.

use crate::fixtures::{fast, login, setup};
use crate::util::{platform, Sandbox};

const KEY: &str = "flx_sa_FLOWSFLOWSFLOWSFLOWS0001";

/// Item 5: an explicit --profile uses that profile's login and endpoint
/// over FLUXLOOP_API_KEY and FLUXLOOP_API_ENDPOINT, and says what it ignored.
#[test]
fn regression_16_profile_flag_beats_the_environment_with_a_note() {
    let fx = setup(0);
    let other = platform();
    let sb = &fx.sb;
    login(sb, &fx.p, &[]).ok();
    let r = fast(sb.cmd(&["--profile", "default", "apikeys", "list"]))
        .env("FLUXLOOP_API_KEY", KEY)
        .env("FLUXLOOP_API_ENDPOINT", other.url())
        .run();
    r.ok();
    assert_eq!(
        r.stderr,
        "note: --profile default uses its own login and endpoint; ignoring environment variable FLUXLOOP_API_KEY, environment variable FLUXLOOP_API_ENDPOINT\n"
    );
    assert!(other.requests().is_empty());
    // --api-key still wins over --profile.
    let r = fast(sb.cmd(&[
        "--profile",
        "default",
        "--api-key",
        &fx.demo.key,
        "sync",
        "pull",
        "--yes",
    ]))
    .run();
    r.ok();
}

/// Item 5: the first login becomes the default profile; "no credential
/// found" lists the stored logins; a default_profile naming a missing
/// profile lists the known ones.
#[test]
fn regression_16_profiles_are_found_and_named() {
    let p = platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[("FLUXLOOP_PROFILE", "work")]).ok();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    assert_eq!(doc["default_profile"], "work");
    sb.cmd(&["apikeys", "list"]).run().ok();

    let r = sb.cmd(&["--profile", "nope", "apikeys", "list"]).run();
    r.code(5);
    assert_eq!(
        r.stderr,
        "error: a login in profile nope (from --profile) not found\n  hint: run `fluxloop auth login --profile nope`, or leave out --profile to use FLUXLOOP_API_KEY\n"
    );
    sb.cmd(&["config", "set", "profile", "gone"]).run().ok();
    let r = sb.cmd(&["apikeys", "list"]).run();
    r.code(5);
    let path = sb.credentials_path().display().to_string();
    assert_eq!(
        r.stderr,
        format!("error: a login in profile gone (from default_profile in {path}) in {path} not found\n  hint: known profiles: work; pick one with --profile NAME or `fluxloop config set profile NAME`, or log in with `fluxloop auth login --profile gone`\n")
    );
    sb.cmd(&["config", "unset", "profile"]).run().ok();
    let r = sb.cmd(&["apikeys", "list"]).run();
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: no credential found\n  hint: pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN\n  hint: or set api.key_file in fluxloop.yaml\n  hint: or run `fluxloop auth login` to store a login in the credentials file\n  hint: or use a stored login (work): --profile NAME, or `fluxloop config set profile NAME`\n"
    );
}

/// Item 7: `auth login` in CI without a terminal fails at once, unless
/// --no-browser says someone will open the URL.
#[test]
fn regression_16_login_in_ci_without_a_terminal_fails_at_once() {
    let p = platform();
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let r = sb
        .cmd(&["auth", "login", "--endpoint", &p.url()])
        .env("CI", "true")
        .run();
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: Authentication failed: `auth login` needs a person at a browser, and this is a CI job without a terminal\n  hint: in CI set FLUXLOOP_API_KEY from the CI's secret store (a read-write key); to log in anyway, pass --no-browser and open the printed URL yourself\n"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(p.requests().is_empty(), "nothing may be sent");
    login(&sb, &p, &[("CI", "true")]).ok();
}

/// Item 9: a job with FLUXLOOP_API_KEY and an endpoint never reads the
/// credentials file, so a corrupt one cannot break it.
#[test]
fn regression_16_a_corrupt_credentials_file_does_not_break_a_key_job() {
    let fx = setup(0);
    std::fs::create_dir_all(fx.sb.fluxloop_home()).unwrap();
    std::fs::write(fx.sb.credentials_path(), "{ not json").unwrap();
    let r = fx.cmd(&["sync", "pull", "--yes"]).run();
    r.ok();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        (
            "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n",
            "Wrote .fluxloop/scenarios/support-bot/pulled\n"
        )
    );
}

/// Item 16: an empty FLUXLOOP_API_KEY= is unset, with a warning.
#[test]
fn regression_16_an_empty_key_variable_is_ignored_with_a_warning() {
    let sb = Sandbox::new();
    let r = sb
        .cmd(&[
            "sync",
            "pull",
            "--yes",
            "--endpoint",
            "https://api.fluxloop.invalid",
        ])
        .env("FLUXLOOP_API_KEY", "")
        .run();
    r.code(3);
    assert!(
        r.stderr.starts_with("warning: FLUXLOOP_API_KEY is set but empty, so it is ignored (is the CI secret missing or not passed to this job?)\nerror: no credential found\n"),
        "{}",
        r.stderr
    );
}

/// Item 4: revoking by the full key needs only that key; an id or a name
/// needs a login or an admin key; a revoked key says so.
#[test]
fn regression_16_revoke_by_possession_id_or_name() {
    let fx = setup(0);
    let (p, demo) = (&fx.p, &fx.demo);
    let victim = p
        .create_key(&demo.project_id, "old-key", "user", "read")
        .unwrap();
    let r = fx.cmd(&["apikeys", "revoke", &victim.key, "--yes"]).run();
    r.ok().no_secret(&victim.key);
    assert_eq!(
        r.stdout,
        format!(
            "Revoked key old-key (id {}); it stops working now.\n",
            victim.id
        )
    );
    let r = fx.cmd(&["apikeys", "revoke", &victim.key, "--yes"]).run();
    r.ok();
    let shown = format!("flx_api_****{}", &victim.key[victim.key.len() - 4..]);
    assert_eq!(
        r.stdout,
        format!("Key {shown} was already revoked; nothing to do.\n")
    );
    // By name: a read-write key may not; a login may, when the name is unique.
    let named = p
        .create_key(&demo.project_id, "by-name", "user", "read")
        .unwrap();
    let r = fx.cmd(&["apikeys", "revoke", "by-name", "--yes"]).run();
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: Permission denied: this key has scope `read-write`, the operation needs `admin`\n  hint: managing keys needs a login or an admin key: use your login with --profile NAME (after `fluxloop auth login --profile NAME`), or pass an admin key with --api-key\n"
    );
    login(&fx.sb, p, &[]).ok();
    p.create_key(&demo.project_id, "twin", "user", "read")
        .unwrap();
    p.create_key(&demo.project_id, "twin", "user", "read")
        .unwrap();
    let login_cmd = |args: &[&str]| fast(fx.sb.cmd(args)).env("FLUXLOOP_API_ENDPOINT", p.url());
    let r = login_cmd(&["apikeys", "revoke", "twin", "--yes"]).run();
    r.code(2);
    assert!(
        r.stderr
            .starts_with("error: 2 active keys have the name \"twin\"\n  hint: name one by id: "),
        "{}",
        r.stderr
    );
    let r = login_cmd(&["apikeys", "revoke", "by-name", "--yes"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        format!(
            "Revoked key by-name (id {}); it stops working now.\n",
            named.id
        )
    );
}

/// Item 16: --color and FORCE_COLOR colour even without a terminal;
/// --no-color and NO_COLOR do not.
#[test]
fn regression_16_color_can_be_forced_and_refused() {
    let sb = Sandbox::new();
    // substring: only whether the error prefix is coloured is asked
    let colored = |r: &crate::util::Run| r.stderr.contains("\u{1b}[31merror:\u{1b}[0m");
    let base = || sb.cmd(&["sync", "pull", "--endpoint", "https://api.fluxloop.invalid"]);
    assert!(!colored(&base().run()));
    assert!(colored(&base().arg("--color").arg("always").run()));
    assert!(colored(&base().env("FORCE_COLOR", "1").run()));
    assert!(colored(
        &base().env("CLICOLOR_FORCE", "1").env("NO_COLOR", "1").run()
    ));
    assert!(!colored(
        &base().env("FORCE_COLOR", "1").arg("--no-color").run()
    ));
    assert!(!colored(&base().env("FORCE_COLOR", "0").run()));
}

/// Item 10: `info` of a revoked key shows what is known, never "never used
/// / 0 requests"; `info ID|NAME` works for a login; `list` hides revoked
/// keys unless `--all`.
#[test]
fn regression_16_info_and_list_of_revoked_keys() {
    let fx = setup(0);
    let (p, demo) = (&fx.p, &fx.demo);
    let gone = p
        .create_key(&demo.project_id, "gone", "user", "read")
        .unwrap();
    fx.cmd(&["apikeys", "revoke", &gone.key, "--yes"])
        .run()
        .ok();
    let r = fx.cmd(&["apikeys", "info", &gone.key]).run();
    r.code(3).no_secret(&gone.key);
    let shown = format!("flx_api_****{}", &gone.key[gone.key.len() - 4..]);
    assert_eq!(
        r.stdout,
        format!("Key:          {shown}\nStatus:       revoked (the platform tells nothing more to a revoked key; a login or an admin key sees the rest: `fluxloop apikeys info ID`)\n")
    );
    login(&fx.sb, p, &[]).ok();
    let as_login = |args: &[&str]| {
        fast(fx.sb.cmd(args))
            .env("FLUXLOOP_API_ENDPOINT", p.url())
            .run()
    };
    let r = as_login(&["apikeys", "info", &gone.id]);
    r.ok();
    let status = r.stdout.lines().find(|l| l.starts_with("Status:")).unwrap();
    assert!(
        status.starts_with("Status:       revoked at 20"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l == "Name:         gone"),
        "{}",
        r.stdout
    );
    let r = as_login(&["apikeys", "info", "demo key"]);
    r.ok();
    assert!(
        r.stdout.lines().any(|l| l == "Status:       active"),
        "{}",
        r.stdout
    );
    let r = as_login(&["apikeys", "list"]);
    r.ok();
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stdout.contains(" gone "), "{}", r.stdout);
    assert!(
        r.stdout
            .ends_with("\n1 revoked key(s) not shown; see them with --all\n"),
        "{}",
        r.stdout
    );
    let r = as_login(&["apikeys", "list", "--all"]);
    r.ok();
    assert!(
        r.stdout
            .lines()
            // substring: one row of the table, whose id and dates vary
            .any(|l| l.contains(" gone ") && l.ends_with("revoked")),
        "{}",
        r.stdout
    );
}

/// A seeded platform whose access tokens live `secs` seconds, and a sandbox
/// logged in to it.
fn logged_in_with_token_ttl(secs: u64) -> (fluxloop_platform::Platform, Sandbox) {
    let p = fluxloop_platform::Platform::start(fluxloop_platform::Config {
        poll_interval_secs: 1,
        access_token_ttl: std::time::Duration::from_secs(secs),
        ..fluxloop_platform::Config::default()
    })
    .unwrap();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[]).ok();
    (p, sb)
}

/// Item 6: a login whose access token expires while `test` runs is
/// refreshed when the platform says so, and the upload goes through.
#[test]
fn regression_16_a_token_that_expires_mid_job_is_refreshed() {
    let (p, sb) = logged_in_with_token_ttl(2);
    sb.write(
        "fluxloop.yaml",
        "scenario: support-bot\nrunner:\n  command: \"sleep 0.4; echo '{\\\"success\\\":true,\\\"output\\\":\\\"ok\\\"}'\"\ntest:\n  parallel: 1\n",
    );
    let r = fast(sb.cmd(&["test", "--no-skip-upload"])).run();
    r.ok();
    let batches = p.batch_ids().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(p.run_count(&batches[0]).unwrap(), 10);
}

/// Items 2 and 13: the results link is the platform's page (or
/// FLUXLOOP_WEB_URL's), and uploading the same results again says so.
#[test]
fn regression_16_results_link_and_re_upload() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let rel = dir
        .strip_prefix(fx.sb.work())
        .unwrap()
        .display()
        .to_string();
    let r = fx.cmd(&["sync", "upload", "--result-dir", &rel]).run();
    r.ok();
    let batch = fx.assert_stored_once(10);
    assert_eq!(
        r.stdout,
        format!(
            "Uploaded 10 runs: run batch {batch}\nView the results: {}/run-batches/{batch}\n",
            fx.p.url()
        )
    );
    let r = fx
        .cmd(&["sync", "upload", "--result-dir", &rel])
        .env("FLUXLOOP_WEB_URL", "https://app.fluxloop.example/")
        .run();
    r.ok();
    assert_eq!(
        r.stdout,
        format!("Already uploaded: these 10 runs are run batch {batch}; nothing new was stored\nView the results: https://app.fluxloop.example/run-batches/{batch}\n")
    );
    fx.assert_stored_once(10);
}

/// Item 1: the whole pull → test → upload flow against a platform that
/// serves only pull and upload to keys (listings and /self answer 404).
#[test]
fn regression_16_a_platform_without_listings_still_pulls_tests_and_uploads() {
    let fx = setup(0);
    let minimal = crate::minimal::start(&fx.p.url());
    fx.sb.write(
        "fluxloop.yaml",
        "scenario: support-bot\nrunner:\n  command: [\"echo\", '{\"success\":true,\"output\":\"ok\"}']\n",
    );
    let r = fx.cmd_at(&minimal.url(), &["sync", "pull", "--yes"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
    );
    assert_eq!(
        r.stderr,
        "note: the platform lists no scenarios to this credential and support-bot was never pulled here; the platform picks the newest bundle of the key's project\nWrote .fluxloop/scenarios/support-bot/pulled\n"
    );
    // The previous pull's bundle is asked for by id next time.
    let r = fx
        .cmd_at(&minimal.url(), &["test", "--no-skip-upload"])
        .run();
    r.ok();
    assert!(
        r.stderr.starts_with("note: the platform lists no scenarios to this credential; pulling the bundle of the previous pull of support-bot (bundle v1)\nPulled 10 inputs"),
        "{}",
        r.stderr
    );
    fx.assert_stored_once(10);
    // With the project known, projects are never listed.
    fx.sb.write(
        "fluxloop.yaml",
        &format!(
            "scenario: support-bot\nproject_id: {}\n",
            fx.demo.project_id
        ),
    );
    let before = minimal.seen().len();
    fx.cmd_at(&minimal.url(), &["sync", "pull", "--yes"])
        .run()
        .ok();
    let lines: Vec<String> = minimal.seen()[before..]
        .iter()
        .map(|s| s.line().to_string())
        .collect();
    assert!(
        lines.iter().all(|l| !l.starts_with("GET /api/projects")),
        "{lines:?}"
    );
}

/// Item 3: `test` after `sync pull` does not download the bundle again.
#[test]
fn regression_16_a_second_pull_of_the_same_bundle_downloads_nothing() {
    let fx = setup(0);
    fx.sb.write("fluxloop.yaml", "scenario: support-bot\n");
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let inputs = fx
        .sb
        .work()
        .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
    let before = std::fs::metadata(&inputs).unwrap().modified().unwrap();
    let r = fx.cmd(&["sync", "pull", "--yes"]).run();
    r.ok();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("support-bot is up to date (bundle v1)\n", "")
    );
    assert_eq!(
        std::fs::metadata(&inputs).unwrap().modified().unwrap(),
        before
    );
    let pulls: Vec<u16> =
        fx.p.requests()
            .iter()
            .filter(|q| q.path == "/api/sync/pull")
            .map(|q| q.status)
            .collect();
    assert_eq!(pulls, [200, 304]);
    // An edited file is not "up to date": the platform's version comes back.
    std::fs::write(&inputs, "[]\n").unwrap();
    let r = fx.cmd(&["sync", "pull", "--yes"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
    );
}

/// Item 8: a missing agent is one configuration error: nothing pulled,
/// nothing run, nothing uploaded.
#[test]
fn regression_16_a_missing_agent_is_a_configuration_error() {
    let fx = setup(0);
    for agent in ["nonexistent-agent", "./not-here.sh"] {
        let r = fx.cmd(&["test", "--no-skip-upload", "--", agent]).run();
        r.code(2);
        let what = if agent.contains('/') {
            format!("{} does not exist", fx.sb.work().join(agent).display())
        } else {
            format!("{agent} is not on PATH")
        };
        assert_eq!(
            r.stderr,
            format!("error: the agent command {what}\n  hint: check runner.command in fluxloop.yaml, or the command after `--`\n")
        );
    }
    assert!(fx.p.requests().is_empty(), "nothing may reach the platform");
    assert!(!fx.sb.work().join(".fluxloop/results").exists());
}

/// Item 11: `-q` prints errors and the one value a script needs.
#[test]
fn regression_16_quiet_means_quiet() {
    let fx = setup(0);
    let r = fx.cmd(&["sync", "pull", "--yes", "-q"]).run();
    r.ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    let r = fx
        .cmd(&[
            "test",
            "-q",
            "--skip-upload",
            "--",
            "echo",
            crate::fixtures::ECHO_OK,
        ])
        .run();
    r.ok();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("PASSED support-bot: 10 of 10 runs passed\n", "")
    );
    let r = fx.cmd(&["config", "get", "endpoint", "-q"]).run();
    assert_eq!(
        (r.stdout.trim_end(), r.stderr.as_str()),
        (fx.p.url().as_str(), "")
    );
    let r = fx
        .cmd(&["sync", "upload", "-q", "--scenario", "nope"])
        .run();
    r.code(5);
    assert!(
        r.stdout.is_empty() && r.stderr.starts_with("error: "),
        "{}",
        r.stderr
    );
}

/// Item 14: `test --keep-local` exists, says which files it kept, and "n"
/// at the conflict prompt keeps the edits and exits 0.
#[test]
fn regression_16_pull_conflicts_keep_local_edits_on_request() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let inputs = fx
        .sb
        .work()
        .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
    let edited = r#"[{"id": "mine", "messages": [{"role": "user", "content": "my own input"}]}]"#;
    std::fs::write(&inputs, edited).unwrap();
    let r = fx
        .cmd(&[
            "test",
            "--keep-local",
            "--skip-upload",
            "--",
            "echo",
            crate::fixtures::ECHO_OK,
        ])
        .run();
    r.ok();
    assert!(
        // substring: the rest of stderr is the run's progress and its timestamped result path
        r.stderr.contains("Kept your local edits of .fluxloop/scenarios/support-bot/pulled/inputs.json (the platform's version of it was not written)\n"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&inputs).unwrap(), edited);
    assert!(
        r.stdout
            .starts_with("PASSED support-bot: 1 of 1 runs passed\n"),
        "{}",
        r.stdout
    );
    // Answering "n" on a terminal: `script` gives the pull a pseudo-terminal.
    let fluxloop = env!("CARGO_BIN_EXE_fluxloop");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{fluxloop} sync pull"), "/dev/null"])
        .env_clear()
        .env("HOME", fx.sb.home())
        .env("FLUXLOOP_HOME", fx.sb.fluxloop_home())
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(fx.sb.work())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"n\n")?;
            child.wait_with_output()
        })
        .expect("script (util-linux) runs the pull on a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        // substring: a pseudo-terminal transcript also holds the prompt and terminal echo
        text.contains(
            "Kept your local edits of .fluxloop/scenarios/support-bot/pulled/inputs.json"
        ),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&inputs).unwrap(), edited);
}

/// Item 6: when the platform says the token expired although the stored
/// expiry says otherwise (clock skew), the CLI refreshes once and repeats.
#[test]
fn regression_16_token_expired_from_the_platform_is_refreshed_and_repeated() {
    let (_p, sb) = logged_in_with_token_ttl(1);
    let path = sb.credentials_path();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["profiles"]["default"]["expires_at"] = "2099-01-01T00:00:00Z".into();
    std::fs::write(&path, doc.to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Poll until the platform has expired the token.
    loop {
        let r = fast(sb.cmd(&["apikeys", "list", "-v"])).run();
        if r.stderr
            // substring: -v traces every request; only the refresh line is asked
            .contains("refreshed the login, repeating the request")
        {
            r.ok();
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
