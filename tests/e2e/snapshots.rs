//! Snapshots of human output: exactly what a person sees. The server's URL
//! and the sandbox's path are replaced by [SERVER] and [HOME] before the
//! comparison; the files in `snapshots/` elide what else changes per run
//! (ids, times, a key's last four characters) with `[..]`. Re-bless them
//! with `SNAPSHOTS=overwrite cargo test --test e2e snapshots`. Every
//! snapshot is also checked for the absence of the secrets in play.

use snapbox::{assert_data_eq, file, str, IntoData};

use crate::util::{platform, Run, Sandbox};

/// Replaces the server's URL and the sandbox's path, which are in the text
/// verbatim, and drops trailing blanks (a table pads its last column).
fn normalize(text: &str, server: &str, sb: &Sandbox) -> String {
    let s = text
        .replace(server, "[SERVER]")
        .replace(&sb.dir.path().display().to_string(), "[HOME]");
    s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

#[track_caller]
fn snapshot(run: &Run, server: &str, sb: &Sandbox, stdout: impl IntoData, stderr: impl IntoData) {
    assert_data_eq!(normalize(&run.stdout, server, sb), stdout);
    assert_data_eq!(normalize(&run.stderr, server, sb), stderr);
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
        file!["snapshots/auth_status_with_a_key.stdout"],
        str![""],
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
    snapshot(
        &r,
        &p.url(),
        &sb,
        file!["snapshots/apikeys_list.stdout"],
        str![""],
    );
    assert!(
        r.stdout.lines().all(|l| l.chars().count() <= 100),
        "wider than 100 columns:\n{}",
        r.stdout
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
        file!["snapshots/apikeys_info.stdout"],
        str![""],
    );
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
        str![""],
        file!["snapshots/invalid_api_key.stderr"],
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
        str![""],
        file!["snapshots/permission_denied.stderr"],
    );

    // No credential at all.
    let r = sb.cmd(&["auth", "status"]).run();
    r.code(3);
    snapshot(
        &r,
        &p.url(),
        &sb,
        str![""],
        file!["snapshots/no_credential.stderr"],
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
        str![""],
        file!["snapshots/token_expired.stderr"],
    );
}
