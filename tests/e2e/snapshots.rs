//! Snapshots of human output: exactly what a person sees, with the parts
//! that change per run ([SERVER], [ID], [TIME], [HOME], [LAST4]) replaced.
//! Every snapshot is also checked for the absence of the secrets in play.

use crate::util::{platform, Run, Sandbox};

/// Replaces run-specific values so the text can be compared exactly.
fn normalize(text: &str, server: &str, sb: &Sandbox) -> String {
    let mut s = text.replace(server, "[SERVER]");
    s = s.replace(&sb.dir.path().display().to_string(), "[HOME]");
    let mut out = String::new();
    for word in split_keep(&s) {
        out.push_str(&classify(&word));
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Splits into runs of word characters and the rest, keeping both.
fn split_keep(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut cur_word = None;
    for c in s.chars() {
        let is_word = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '*' | '+');
        if cur_word != Some(is_word) && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur_word = Some(is_word);
        cur.push(c);
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

fn classify(word: &str) -> String {
    let is_uuid = word.len() == 36 && word.chars().filter(|c| *c == '-').count() == 4;
    if is_uuid {
        return "[ID]".into();
    }
    if word.len() >= 20 && word.as_bytes()[4] == b'-' && word.contains('T') && word.ends_with('Z') {
        return "[TIME]".into();
    }
    if let Some(i) = word.find("****") {
        if word.len() == i + 8 {
            return format!("{}****[LAST4]", &word[..i]);
        }
    }
    word.to_string()
}

#[track_caller]
fn snapshot(run: &Run, server: &str, sb: &Sandbox, stdout: &str, stderr: &str) {
    let got_out = normalize(&run.stdout, server, sb);
    let got_err = normalize(&run.stderr, server, sb);
    assert_eq!(
        got_out.trim_end(),
        stdout.trim_end(),
        "stdout snapshot\n--- got\n{got_out}"
    );
    assert_eq!(
        got_err.trim_end(),
        stderr.trim_end(),
        "stderr snapshot\n--- got\n{got_err}"
    );
}

#[test]
fn auth_status_with_a_key() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    r.ok().no_secret(&demo.key);
    snapshot(
        &r,
        &p.url(),
        &sb,
        "\
Credential:  flx_sa_****[LAST4] (API key)
From:        environment variable FLUXLOOP_API_KEY
Endpoint:    [SERVER] (from environment variable FLUXLOOP_API_ENDPOINT)
Profile:     default (from default)
Key name:    demo key (id [ID])
Type:        service-account
Scope:       read-write
Project:     [ID]
Status:      ✓ valid",
        "",
    );
}

#[test]
fn apikeys_list_and_info() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let admin = p
        .create_key(&demo.project_id, "rotation-admin", "user", "admin")
        .unwrap()
        .key;
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["apikeys", "list"])
        .env("FLUXLOOP_API_KEY", &admin)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    r.ok().no_secret(&admin).no_secret(&demo.key);
    let got = normalize(&r.stdout, &p.url(), &sb);
    assert_eq!(
        lines_header(&got),
        "ID NAME KEY SCOPE LAST USED USES STATUS"
    );
    let body: Vec<&str> = got.lines().skip(1).collect();
    assert_eq!(body.len(), 2, "{got}");
    assert!(
        got.lines().all(|l| l.chars().count() <= 100),
        "wider than 100 columns:\n{got}"
    );
    let id8 = |l: &str| {
        l.len() > 8 && l[..8].chars().all(|c| c.is_ascii_hexdigit()) && l.as_bytes()[8] == b' '
    };
    assert!(
        body.iter().any(|l| id8(l)
            && l.contains("demo key")
            && l.contains("read-write")
            && l.contains("never")
            && l.ends_with("active")),
        "{got}"
    );
    assert!(
        body.iter().any(|l| l.contains("rotation-admin")
            && l.contains("admin")
            && l.contains("today")
            && l.ends_with("active")),
        "{got}"
    );

    let r = sb
        .cmd(&["apikeys", "info", &demo.key])
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    r.ok().no_secret(&demo.key);
    snapshot(
        &r,
        &p.url(),
        &sb,
        "\
Key:          flx_sa_****[LAST4]
Name:         demo key
ID:           [ID]
Type:         service-account
Scope:        read-write (full access to scenarios and results)
Project:      [ID]
Created:      [TIME]
Last used:    [TIME]
Usage count:  1 requests
Status:       active",
        "",
    );
}

/// The header line of a table, columns separated by single spaces.
fn lines_header(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_seeds_troubleshooting_errors() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let read = p
        .create_key(&demo.project_id, "reader", "user", "read")
        .unwrap()
        .key;
    let sb = Sandbox::new();

    // Invalid API key (format).
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_API_KEY", "flx_old_key")
        .run();
    r.code(3);
    snapshot(
        &r,
        &p.url(),
        &sb,
        "",
        "\
error: Invalid API key (from environment variable FLUXLOOP_API_KEY): it does not start with flx_api_ or flx_sa_
  hint: an API key looks like flx_api_… or flx_sa_… followed by at least 20 characters of A-Z a-z 0-9 _ -; compare its first characters (`printf %.8s \"$FLUXLOOP_API_KEY\"`) with the key on the platform (settings/api-keys)",
    );

    // Permission denied.
    let r = sb
        .cmd(&["apikeys", "list"])
        .env("FLUXLOOP_API_KEY", &read)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run();
    r.code(3).no_secret(&read);
    snapshot(
        &r,
        &p.url(),
        &sb,
        "",
        "\
error: Permission denied: this key has scope `read`, the operation needs `admin`
  hint: managing keys needs a login or an admin key: use your login with --profile NAME (after `fluxloop auth login --profile NAME`), or pass an admin key with --api-key",
    );

    // No credential at all.
    let r = sb.cmd(&["auth", "status"]).run();
    r.code(3);
    snapshot(
        &r,
        &p.url(),
        &sb,
        "",
        "\
error: no credential found
  hint: pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN
  hint: or set api.key_file in fluxloop.yaml
  hint: or run `fluxloop auth login` to store a login in the credentials file",
    );

    // Token expired (a login whose refresh token is dead).
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    std::fs::write(
        sb.credentials_path(),
        format!(
            r#"{{"profiles": {{"default": {{"access_token": "flx_at_dead", "refresh_token": "flx_refresh_dead",
                 "expires_at": "2024-11-02T10:00:00Z", "api_endpoint": "{}"}}}}}}"#,
            p.url()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let r = sb.cmd(&["auth", "refresh"]).run();
    r.code(3).no_secret("flx_refresh_dead");
    snapshot(
        &r,
        &p.url(),
        &sb,
        "",
        "\
error: Token expired: the login of profile default has expired and its refresh token is no longer valid
  hint: run `fluxloop auth login` to log in again",
    );
}
