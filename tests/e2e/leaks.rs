//! Issue 11: every path a key or token could leak by, attacked. Each test
//! carries out the attack against the real binary (a hostile server or a
//! logging proxy on 127.0.0.1, a planted repository file, an agent that
//! prints its environment) and checks that nothing reached the attacker.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::fixtures::{fast, login, setup, stored_tokens, ECHO_OK};
use crate::trap::{json, Reply, Trap};
use crate::util::{platform, Sandbox};

const KEY: &str = "flx_sa_LEAKCANARYLEAKCANARY0001";
const ACCESS: &str = "flx_at_ACCESSCANARYACCESSCANARY01";
const REFRESH: &str = "flx_refresh_REFRESHCANARYREFRESH01";

const INSECURE: &str = "error: refusing to send credentials over plain http to http://evil.example\n  hint: use an https:// endpoint; plain http:// is only allowed to localhost/127.0.0.1/::1\n";

/// A stored login of profile `default`, issued by `endpoint`, expired
/// (so any command that uses it must refresh first).
fn stored_login(sb: &Sandbox, endpoint: &str, expired: bool) {
    let expires = if expired {
        "2020-01-01T00:00:00Z"
    } else {
        "2099-01-01T00:00:00Z"
    };
    let doc = serde_json::json!({"profiles": {"default": {
        "access_token": ACCESS, "refresh_token": REFRESH,
        "expires_at": expires, "api_endpoint": endpoint}}});
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    std::fs::set_permissions(sb.fluxloop_home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(sb.credentials_path(), doc.to_string()).unwrap();
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

#[track_caller]
fn nothing_reached(trap: &Trap) {
    let all = trap.all();
    for secret in [KEY, ACCESS, REFRESH] {
        assert!(
            // substring: an absence, which must hold anywhere in the text
            !all.contains(secret),
            "{secret} reached the attacker:\n{all}"
        );
    }
    assert!(
        trap.seen().is_empty(),
        "requests reached the attacker:\n{all}"
    );
}

/// Item 1: a refresh token goes nowhere a key may not: `auth refresh`, the
/// automatic refresh before a pull, and logout all refuse plain http off
/// loopback before sending anything.
#[test]
fn regression_11_refresh_tokens_obey_the_plain_http_rule() {
    let sb = Sandbox::new();
    let proxy = Trap::proxy();
    stored_login(&sb, "http://evil.example", true);
    for args in [
        &["auth", "refresh"][..],
        &["sync", "pull", "--yes", "--scenario", "s"],
    ] {
        let r = sb.cmd(args).env("http_proxy", proxy.url()).run();
        r.code(2);
        assert_eq!(r.stderr, INSECURE, "{args:?}");
        nothing_reached(&proxy);
    }
    let r = sb
        .cmd(&["auth", "logout"])
        .env("http_proxy", proxy.url())
        .run();
    r.ok();
    assert_eq!(
        r.stdout,
        "Logged out of profile default on this machine; the session was NOT ended on the platform (refusing to send credentials over plain http to http://evil.example), so its tokens work until they expire\n"
    );
    nothing_reached(&proxy);
    let r = sb
        .cmd(&[
            "auth",
            "login",
            "--no-browser",
            "--endpoint",
            "http://evil.example",
        ])
        .env("http_proxy", proxy.url())
        .run();
    r.code(2);
    assert_eq!(r.stderr, INSECURE);
    nothing_reached(&proxy);
}

/// Item 2: one parser decides the host. Strings that a loose parser reads
/// as 127.0.0.1 but a request sends to evil.example are refused outright.
#[test]
fn regression_11_an_endpoint_is_parsed_once_and_tricks_are_refused() {
    let sb = Sandbox::new();
    let proxy = Trap::proxy();
    for (url, what) in [
        ("http://evil.example?@127.0.0.1", "a query string (?…)"),
        ("http://evil.example#@127.0.0.1", "a fragment (#…)"),
        ("http://evil.example\\@127.0.0.1", "a backslash"),
        ("http://user:pw@127.0.0.1:9", "user information (user@host)"),
    ] {
        for how in ["--endpoint", "FLUXLOOP_API_ENDPOINT"] {
            let mut cmd = sb
                .cmd(&["sync", "pull", "--yes", "--scenario", "s"])
                .env("FLUXLOOP_API_KEY", KEY)
                .env("http_proxy", proxy.url());
            let origin = if how == "--endpoint" {
                cmd = cmd.arg("--endpoint").arg(url);
                "--endpoint".to_string()
            } else {
                cmd = cmd.env(how, url);
                format!("environment variable {how}")
            };
            let r = cmd.run();
            r.code(2);
            assert_eq!(
                r.stderr,
                format!("error: invalid endpoint {url:?} (from {origin}): an endpoint must not contain {what}\n  hint: an endpoint looks like https://api.fluxloop.ai\n"),
            );
            nothing_reached(&proxy);
        }
    }
    // *.localhost is not trusted as loopback.
    let r = sb
        .cmd(&["sync", "pull", "--yes", "--scenario", "s"])
        .env("FLUXLOOP_API_KEY", KEY)
        .env("FLUXLOOP_API_ENDPOINT", "http://evil.localhost")
        .env("http_proxy", proxy.url())
        .run();
    r.code(2);
    assert_eq!(r.stderr, INSECURE.replace("evil.example", "evil.localhost"));
    nothing_reached(&proxy);
}

/// Item 3: a proxy never sees loopback traffic, whatever NO_PROXY says.
#[test]
fn regression_11_loopback_traffic_bypasses_every_proxy() {
    let fx = setup(0);
    let proxy = Trap::proxy();
    for var in ["http_proxy", "HTTP_PROXY", "ALL_PROXY", "HTTPS_PROXY"] {
        let r = fx
            .cmd(&["sync", "pull", "--yes"])
            .env(var, proxy.url())
            .env("NO_PROXY", "example.com")
            .run();
        r.ok();
        assert!(proxy.seen().is_empty(), "{var}: {}", proxy.all());
    }
    // substring: an absence, which must hold anywhere in the text
    assert!(!proxy.all().contains(&fx.demo.key));
}

/// Item 4: a planted fluxloop.yaml or .fluxloop/project.json cannot steer a
/// stored login to another host.
#[test]
fn regression_11_a_stored_login_goes_only_to_its_platform() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[]).ok();
    let (access, refresh) = stored_tokens(&sb);
    let evil = Trap::start(|_| json(200, "{}"));
    let cases = [
        (
            "fluxloop.yaml",
            format!("api:\n  endpoint: {}\n", evil.url()),
            "api.endpoint in ",
        ),
        (
            ".fluxloop/project.json",
            format!(
                r#"{{"project_id": "{}", "api_url": "{}"}}"#,
                demo.project_id,
                evil.url()
            ),
            "",
        ),
    ];
    for (file, text, key) in cases {
        let planted = sb.write(file, &text);
        for args in [
            &["sync", "pull", "--yes"][..],
            &["auth", "refresh"],
            &["apikeys", "list"],
        ] {
            let r = sb.cmd(args).run();
            r.code(3).no_secret(&access).no_secret(&refresh);
            assert_eq!(
                r.stderr,
                format!(
                    "error: the login of profile default belongs to {p_url}; it is not sent to {evil} (from {key}{planted})\n  hint: to use this login, pass --endpoint {p_url}\n  hint: to use {evil}, log in to it: `fluxloop auth login --profile NAME --endpoint {evil}` (a profile other than default)\n",
                    p_url = p.url(),
                    evil = evil.url(),
                    planted = planted.display(),
                ),
                "{file} {args:?}"
            );
        }
        // The user's explicit choice of the login's own platform works.
        sb.cmd(&["apikeys", "list", "--endpoint", &p.url()])
            .run()
            .ok();
        std::fs::remove_file(&planted).unwrap();
    }
    assert!(evil.seen().is_empty(), "{}", evil.all());
}

/// Item 4: a key from the environment sent to an endpoint that only a
/// repository file names is allowed (CI does that), but said.
#[test]
fn regression_11_an_env_key_to_a_repository_endpoint_is_warned_about() {
    let fx = setup(0);
    let yaml = fx.sb.write(
        "fluxloop.yaml",
        &format!("api:\n  endpoint: {}\n", fx.p.url()),
    );
    let r = fast(fx.sb.cmd(&["sync", "pull", "--yes", "--quiet"]))
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .run();
    r.ok();
    // --quiet hides the warning; without it, it is the first line.
    assert_eq!(r.stderr, "");
    let r = fast(fx.sb.cmd(&["sync", "pull", "--yes"]))
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .run();
    r.ok();
    assert_eq!(
        r.stderr.lines().next().unwrap(),
        format!(
            "warning: sending the credential from environment variable FLUXLOOP_API_KEY to {}, an endpoint named by api.endpoint in {}",
            fx.p.url(),
            yaml.display()
        )
    );
}

/// Item 5: an agent that dumps its environment finds no credential in it;
/// `runner.env` still passes a value on purpose.
#[test]
fn regression_11_the_agent_never_sees_credentials() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    fx.sb.write(
        "fluxloop.yaml",
        "scenario: support-bot\nrunner:\n  env: {PASSED_ON_PURPOSE: 'yes'}\n",
    );
    let dump = fx.sb.work().join("env-dump");
    let script = format!("env >> {}; echo '{ECHO_OK}'", dump.display());
    fx.cmd(&[
        "test",
        "--skip-pull",
        "--skip-upload",
        "--parallel",
        "1",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("FLUXLOOP_SYNC_API_KEY", KEY)
    .env("FLUXLOOP_TOKEN", ACCESS)
    .env("FLUXLOOP_OIDC_TOKEN", REFRESH)
    .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-oidc-request-secret")
    .run()
    .ok();
    let seen = std::fs::read_to_string(&dump).unwrap();
    for leaked in [
        fx.demo.key.as_str(),
        KEY,
        ACCESS,
        REFRESH,
        "gh-oidc-request-secret",
    ] {
        // substring: an absence, which must hold anywhere in the text
        assert!(!seen.contains(leaked), "the agent saw {leaked}");
    }
    assert!(seen.lines().any(|l| l == "PASSED_ON_PURPOSE=yes"), "{seen}");
}

/// Reads stdout+stderr as the GitHub runner does: lines that start (after
/// white space) with `::` are commands, except inside a stop-commands fence.
fn workflow_commands(log: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut resume: Option<String> = None;
    for line in log.lines() {
        let t = line.trim_start();
        if let Some(token) = &resume {
            if t == format!("::{token}::") {
                resume = None;
            }
            continue;
        }
        if let Some(token) = t.strip_prefix("::stop-commands::") {
            resume = Some(token.to_string());
            continue;
        }
        if t.starts_with("::") || t.starts_with("##[") {
            found.push(t.to_string());
        }
    }
    found
}

/// Item 6: an agent's error text cannot forge workflow commands, escape
/// sequences, or Markdown in the step summary.
#[test]
fn regression_11_agent_text_cannot_forge_ci_output() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let evil = r#"{"success":false,"output":"x","error":{"message":"boom [click](https://evil.example)\n::error::forged annotation\n::stop-commands::pwn\n##[error]old forged\n\u001b]0;retitled\u0007 end"}}"#;
    let summary = fx.sb.work().join("summary.md");
    let r = fx
        .cmd(&["test", "--skip-pull", "--skip-upload", "--", "echo", evil])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    r.code(10);
    let log = format!("{}{}", r.stdout, r.stderr);
    assert!(
        // substring: an absence, which must hold anywhere in the text
        !log.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    for command in workflow_commands(&log) {
        assert!(
            command.starts_with("::error title=fluxloop run failed::")
                || command.starts_with("::group::")
                || command.starts_with("::endgroup::"),
            "forged workflow command: {command}"
        );
        // Our annotations carry the text escaped, on one line.
        assert!(!command.contains('\n'));
    }
    let md = std::fs::read_to_string(&summary).unwrap();
    // substring: an absence, which must hold anywhere in the text
    assert!(!md.contains("[click](https://evil.example)"), "{md}");
    // substring: the step summary around the escaped link has timings
    assert!(md.contains("\\[click\\]\\(https://evil.example\\)"), "{md}");
}

/// Item 6: a server's text is never printed raw: no escape sequences, and a
/// server that echoes the request does not put the key on stderr.
#[test]
fn regression_11_server_text_is_scrubbed_before_printing() {
    let sb = Sandbox::new();
    let echo = Trap::start(|seen| Reply {
        status: 400,
        headers: vec![],
        // Echo the Authorization header first, as a debugging proxy page would.
        body: format!(
            "{}\n\u{1b}]0;retitled\u{7}\u{1b}[2Jrequest was:\n{}",
            seen.raw
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization"))
                .unwrap_or(""),
            seen.raw
        ),
    });
    let r = fast(sb.cmd(&["sync", "pull", "--yes", "--scenario", "s"]))
        .env("FLUXLOOP_API_KEY", KEY)
        .env("FLUXLOOP_API_ENDPOINT", echo.url())
        .run();
    r.code(1).no_secret(KEY);
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    // The echoed header is there, its value masked (a substring check: the
    // rest of the echo is the request, which varies with the client).
    assert!(
        // substring: -v traces whole requests; the masked header is what is asked
        r.stderr.contains("authorization: Bearer flx_sa_****\n"),
        "{}",
        r.stderr
    );
    let json_error = Trap::start(|_| {
        json(
            500,
            &format!(
                r#"{{"error":{{"code":"x\u001b[31m","message":"\u001b]8;;https://evil.example\u0007click\u001b]8;;\u0007 {KEY}"}}}}"#
            ),
        )
    });
    let r = fast(sb.cmd(&["sync", "pull", "--yes", "--scenario", "s"]))
        .env("FLUXLOOP_API_KEY", KEY)
        .env("FLUXLOOP_API_ENDPOINT", json_error.url())
        .env("FLUXLOOP_HTTP_RETRIES", "0")
        .run();
    r.no_secret(KEY);
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

/// Item 6: the browser opens only the platform's own page over https (or
/// loopback http), never a URL a hostile server picks.
#[test]
fn regression_11_the_browser_opens_only_the_platforms_own_page() {
    let sb = Sandbox::new();
    let opened = sb.dir.path().join("opened");
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (page, opens) in [
        ("https://evil.example/device", false),
        ("http://127.0.0.2:1/device", false),
        ("file:///etc/passwd", false),
        ("{self}/device?user_code=ABCD", true),
    ] {
        let hostile = Trap::start({
            let page = page.to_string();
            move |seen| {
                if seen.line().starts_with("POST /api/cli-connect/start") {
                    let host = seen
                        .raw
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("host: ")
                                .or_else(|| l.strip_prefix("Host: "))
                        })
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    let url = page.replace("{self}", &format!("http://{host}"));
                    json(
                        200,
                        &format!(
                            r#"{{"device_code":"dc","user_code":"ABCD","verification_url":"{url}","expires_in":60,"interval":1}}"#
                        ),
                    )
                } else {
                    json(200, r#"{"status":"denied"}"#)
                }
            }
        });
        let _ = std::fs::remove_file(&opened);
        let r = sb
            .cmd(&["auth", "login", "--endpoint", &hostile.url()])
            .env("PATH", &path)
            .env("DISPLAY", ":99")
            .run();
        r.code(3);
        let deadline = Instant::now() + Duration::from_secs(5);
        while opens && !opened.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(opened.exists(), opens, "{page}: {}", r.stderr);
        if !opens {
            assert!(
                // The rest of stderr is the login's own progress.
                // substring: the rest of stderr is the login's own progress
                r.stderr.contains(
                    "\nwarning: not opening the browser: the login page is not on 127.0.0.1 over https\n"
                ),
                "{}",
                r.stderr
            );
        }
    }
}

/// Item 7: 20 parallel read-modify-writes of the credentials file lose no
/// update.
#[test]
fn regression_11_parallel_credential_updates_lose_nothing() {
    let sb = Sandbox::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            sb.cmd(&[
                "--profile",
                &format!("p{i}"),
                "config",
                "set",
                "endpoint",
                &format!("https://e{i}.example"),
            ])
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.credentials_path()).unwrap()).unwrap();
    for i in 0..20 {
        assert_eq!(
            doc["profiles"][format!("p{i}")]["api_endpoint"],
            format!("https://e{i}.example"),
            "update {i} was lost: {doc}"
        );
    }
}

/// Item 7: parallel refreshes of one login each send the refresh token
/// stored at that moment; none presents a rotated one, and the login survives.
#[test]
fn regression_11_parallel_refreshes_keep_the_login() {
    let p = platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[]).ok();
    let children: Vec<_> = (0..8)
        .map(|_| {
            sb.cmd(&["auth", "refresh"])
                .command()
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    sb.cmd(&["auth", "refresh"]).run().ok();
    sb.cmd(&["apikeys", "list"]).run().ok();
}

/// Item 7: a FIFO where the credentials file belongs is an error, not a hang.
#[test]
fn regression_11_a_fifo_credentials_file_is_refused_not_read() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    std::fs::set_permissions(sb.fluxloop_home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = sb.credentials_path();
    let c = std::ffi::CString::new(path.display().to_string()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut child = sb
        .cmd(&["config", "list"])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fluxloop hung on a FIFO credentials file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {0} is not a regular file\n  hint: remove it (rm {0}) or point FLUXLOOP_HOME at another directory\n",
            path.display()
        )
    );
}

/// Item 7: a FLUXLOOP_HOME that others can write is warned about.
#[test]
fn regression_11_a_world_writable_home_is_warned_about() {
    let sb = Sandbox::new();
    stored_login(&sb, "https://api.fluxloop.ai", false);
    std::fs::set_permissions(sb.fluxloop_home(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = sb.cmd(&["config", "get", "profile"]).run();
    r.ok();
    let home = sb.fluxloop_home().display().to_string();
    assert_eq!(
        r.stderr,
        format!(
            "warning: {home} is writable by other users (mode 0777); fix with: chmod 700 {home}\n"
        )
    );
}

/// Item 7: a refresh with a home that cannot be written fails before the
/// platform rotates anything, so the login still works afterwards.
#[test]
fn regression_11_a_read_only_home_never_costs_the_login() {
    let p = platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[]).ok();
    let home = sb.fluxloop_home();
    let refresh = |read_only: bool| {
        let mut cmd = sb.cmd(&["auth", "refresh"]).command();
        if read_only {
            // root writes through permission bits, so make the home a
            // read-only mount in a private mount namespace instead.
            let fluxloop = cmd.get_program().to_owned();
            cmd = std::process::Command::new("unshare");
            cmd.args(["--mount", "--map-root-user", "sh", "-c"])
                .arg(format!(
                    "mount --bind {h} {h} && mount -o remount,ro,bind {h} && exec \"$0\" auth refresh",
                    h = home.display()
                ))
                .arg(fluxloop)
                .env_clear()
                .env("HOME", sb.home())
                .env("FLUXLOOP_HOME", &home)
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .current_dir(sb.work());
        }
        cmd.output().unwrap()
    };
    let out = refresh(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), stderr.as_ref()),
        (
            Some(1),
            format!(
                "error: cannot write {}: Read-only file system (os error 30)\n  hint: nothing was changed; check that {} is writable (not a read-only file system)\n",
                sb.credentials_path().display(),
                sb.fluxloop_home().display()
            )
            .as_str()
        )
    );
    let out = refresh(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 8: logout ends the session on the platform: the old access token
/// stops working at once.
#[test]
fn regression_11_logout_ends_the_session_on_the_platform() {
    let p = platform();
    p.seed_demo().unwrap();
    let sb = Sandbox::new();
    login(&sb, &p, &[]).ok();
    let (access, _) = stored_tokens(&sb);
    sb.cmd(&["apikeys", "list"]).run().ok();
    let r = sb.cmd(&["auth", "logout"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        "Logged out of profile default: the platform ended the session\n"
    );
    let r = sb
        .cmd(&["apikeys", "list", "--endpoint", &p.url()])
        .env("FLUXLOOP_TOKEN", &access)
        .run();
    r.code(3).no_secret(&access);
}

/// Item 8: an unreachable platform does not keep the login on disk.
#[test]
fn regression_11_logout_forgets_locally_when_the_platform_is_down() {
    let sb = Sandbox::new();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    stored_login(&sb, &format!("http://{closed}"), false);
    let r = fast(sb.cmd(&["auth", "logout"]))
        .env("FLUXLOOP_HTTP_RETRIES", "0")
        .run();
    r.ok().no_secret(ACCESS).no_secret(REFRESH);
    assert!(
        r.stdout.starts_with("Logged out of profile default on this machine; the session was NOT ended on the platform (cannot reach http://"),
        "{}",
        r.stdout
    );
    let text = std::fs::read_to_string(sb.credentials_path()).unwrap();
    // substring: an absence, which must hold anywhere in the text
    assert!(!text.contains(ACCESS) && !text.contains(REFRESH), "{text}");
}
