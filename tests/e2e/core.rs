//! Core behaviour of the binary: keys, resolution, config, errors.
//!
//! These run the real `fluxloop` with a clean environment and a temp
//! `FLUXLOOP_HOME`; none needs a platform. Where a command must not touch the
//! network, its endpoint is a listener on 127.0.0.1 that the test owns and
//! checks afterwards.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value as Json;

use crate::util::{platform, Run, Sandbox};

/// Well-formed keys, distinct so a test can tell which one won.
const FLAG_KEY: &str = "flx_api_FLAGflagFLAGflagFLAG0001";
const ENV_KEY: &str = "flx_sa_ENVenvENVenvENVenvENV0002";
const PROFILE_TOKEN: &str = "flx_at_PROFILEprofilePROFILE0003";
const PROFILE_REFRESH: &str = "flx_refresh_REFRESHrefreshREFRESH0004";

/// A port on 127.0.0.1 that records whether anything connected to it.
struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        Tripwire { listener }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// Connections made so far (the kernel queues them even unaccepted).
    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        if let Ok((_, peer)) = self.listener.accept() {
            panic!("{what}: a connection was made (from {peer})");
        }
    }
}

/// Writes the credentials file with `mode`, in a 0700 directory.
fn write_credentials(sb: &Sandbox, doc: &Json, mode: u32) {
    let dir = sb.fluxloop_home();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = sb.credentials_path();
    std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The seed's two-profile file, plus fields we do not know.
fn two_profiles() -> Json {
    serde_json::json!({
        "default_profile": "production",
        "written_by": "another tool",
        "profiles": {
            "production": {
                "access_token": PROFILE_TOKEN,
                "refresh_token": PROFILE_REFRESH,
                "expires_at": "2099-11-02T10:00:00Z",
                "api_endpoint": "https://api.fluxloop.example",
                "team": "qa"
            },
            "staging": {
                "access_token": "flx_at_STAGINGstagingSTAGING0005",
                "api_endpoint": "https://api-staging.fluxloop.example"
            }
        }
    })
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// One row of `config list --json`: (value, origin, origin_kind).
#[track_caller]
fn setting(r: &Run, key: &str) -> (Option<String>, String, String) {
    let doc = r.json();
    let row = doc["settings"]
        .as_array()
        .expect("settings array")
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no setting {key} in {doc}"));
    (
        row["value"].as_str().map(String::from),
        row["origin"].as_str().unwrap_or_default().to_string(),
        row["origin_kind"].as_str().unwrap_or_default().to_string(),
    )
}

/// Commands that need a credential and may touch the network, and check it
/// before anything else. (`sync upload` first looks for a local result
/// directory, so it fails earlier without one.)
const NETWORK_COMMANDS: &[&[&str]] = &[
    &["sync", "pull"],
    &["auth", "status"],
    &["apikeys", "list"],
    &["apikeys", "create", "--name", "ci"],
];

#[test]
fn an_invalid_key_exits_3_before_any_connection() {
    let wire = Tripwire::new();
    let sb = Sandbox::new();
    sb.write("fluxloop.yaml", "scenario: support-bot\n");
    for args in NETWORK_COMMANDS {
        let r = sb
            .cmd(args)
            .env("FLUXLOOP_API_KEY", "nope")
            .env("FLUXLOOP_API_ENDPOINT", wire.url())
            .run();
        wire.assert_untouched(&args.join(" "));
        r.no_secret("nope");
        r.code(3);
        assert!(
            r.stderr.starts_with("error: Invalid API key (from environment variable FLUXLOOP_API_KEY): it does not start with flx_api_ or flx_sa_"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(r.stderr, "error: Invalid API key (from environment variable FLUXLOOP_API_KEY): it does not start with flx_api_ or flx_sa_\n  hint: an API key looks like flx_api_… or flx_sa_… followed by at least 20 characters of A-Z a-z 0-9 _ -; compare its first characters (`printf %.8s \"$FLUXLOOP_API_KEY\"`) with the key on the platform (settings/api-keys)\n", "{args:?}");
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

#[test]
fn every_bad_key_form_names_the_problem_and_never_echoes_the_key() {
    // Every value carries SECRETPART, which must never be printed.
    let cases: &[(&str, &str)] = &[
        (
            "\"flx_api_SECRETPARTabcdefghijklmn\"",
            "the value is wrapped in quotes",
        ),
        (
            "'flx_api_SECRETPARTabcdefghijklmn'",
            "the value is wrapped in quotes",
        ),
        (
            "flx_api_SECRETPARTabcdefghijklmn\n",
            "the value has a trailing newline",
        ),
        (
            "flx_api_SECRETPARTabcdefghijklmn ",
            "the value has trailing whitespace",
        ),
        (
            " flx_api_SECRETPARTabcdefghijklmn",
            "the value has leading whitespace",
        ),
        (
            "flx_api_SECRETPART",
            "it is too short: 10 characters after the prefix, expected at least 20",
        ),
        (
            "sk_live_SECRETPARTabcdefghijklmn",
            "it does not start with flx_api_ or flx_sa_",
        ),
        (
            "FLX_API_SECRETPARTabcdefghijklmn",
            "it does not start with flx_api_ or flx_sa_",
        ),
        (
            "flx_at_SECRETPARTabcdefghijklmn",
            "this is a login token, not an API key",
        ),
        (
            "flx_api_SECRETPARTabcdé€ghijklmn",
            "it contains U+00E9 at position 23",
        ),
        (
            "flx_api_SECRETPART abcdefghijklmn",
            "it contains a space at position 19",
        ),
        (
            "flx_api_SECRETPART.abcdefghijklmn",
            "it contains '.' at position 19",
        ),
    ];
    let wire = Tripwire::new();
    let sb = Sandbox::new();
    for (key, problem) in cases {
        for via_flag in [false, true] {
            for args in NETWORK_COMMANDS {
                let mut cmd = sb.cmd(args).env("FLUXLOOP_API_ENDPOINT", wire.url());
                let origin = if via_flag {
                    cmd = cmd.arg(format!("--api-key={key}"));
                    "--api-key"
                } else {
                    cmd = cmd.env("FLUXLOOP_API_KEY", *key);
                    "environment variable FLUXLOOP_API_KEY"
                };
                let r = cmd.run();
                r.no_secret("SECRETPART").no_secret(key.trim());
                r.code(3);
                let want = format!("error: Invalid API key (from {origin}): {problem}\n");
                assert!(
                    r.stderr.starts_with(&want),
                    "{key:?} via {origin}, {args:?}:\n{}",
                    r.stderr
                );
                // substring: the hint differs per defect; the error line is compared above
                r.stderr_has("hint: ");
            }
        }
    }
    wire.assert_untouched("bad keys");
}

#[test]
fn a_bad_key_file_is_rejected_with_its_path() {
    let wire = Tripwire::new();
    let sb = Sandbox::new();
    sb.write("fluxloop.yaml", "api:\n  key_file: secrets/key.txt\n");
    sb.write("secrets/key.txt", "flx_api_SECRETPART\n");
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_API_ENDPOINT", wire.url())
        .run();
    r.code(3).no_secret("SECRETPART");
    let path = sb.work().join("secrets/key.txt");
    assert!(
        r.stderr.starts_with(&format!(
            "error: Invalid API key (from key file {}): it is too short",
            path.display()
        )),
        "{}",
        r.stderr
    );
    // A trailing newline in a file is how editors save: accepted.
    sb.write("secrets/key.txt", &format!("{FLAG_KEY}\n"));
    let r = sb.cmd(&["config", "get", "credential"]).run();
    assert_eq!(
        r.ok().no_secret(FLAG_KEY).stdout,
        "flx_api_****0001 (API key)\n"
    );
    wire.assert_untouched("key file");
}

#[test]
fn api_key_flag_beats_env_beats_profile() {
    let sb = Sandbox::new();
    write_credentials(&sb, &two_profiles(), 0o600);
    let secrets = [FLAG_KEY, ENV_KEY, PROFILE_TOKEN, PROFILE_REFRESH];
    let check = |r: &Run| {
        for s in secrets {
            r.no_secret(s);
        }
    };

    // The profile alone.
    let r = sb.cmd(&["config", "list", "--json"]).run();
    r.ok();
    check(&r);
    let (value, origin, kind) = setting(&r, "credential");
    assert_eq!(value.as_deref(), Some("flx_at_****0003 (login)"));
    assert_eq!(kind, "profile");
    assert_eq!(
        origin,
        format!("profile production in {}", sb.credentials_path().display())
    );

    // FLUXLOOP_API_KEY beats the profile.
    let r = sb
        .cmd(&["config", "list", "--json"])
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .run();
    r.ok();
    check(&r);
    assert_eq!(
        setting(&r, "credential"),
        (
            Some("flx_sa_****0002 (API key)".into()),
            "environment variable FLUXLOOP_API_KEY".into(),
            "env".into()
        )
    );
    // So does the older name.
    let r = sb
        .cmd(&["config", "list", "--json"])
        .env("FLUXLOOP_SYNC_API_KEY", ENV_KEY)
        .run();
    r.ok();
    assert_eq!(
        setting(&r, "credential").1,
        "environment variable FLUXLOOP_SYNC_API_KEY"
    );

    // --api-key beats FLUXLOOP_API_KEY, before or after the command.
    for args in [
        &["--api-key", FLAG_KEY, "config", "list", "--json"][..],
        &["config", "list", "--json", "--api-key", FLAG_KEY],
    ] {
        let r = sb.cmd(args).env("FLUXLOOP_API_KEY", ENV_KEY).run();
        r.ok();
        check(&r);
        assert_eq!(
            setting(&r, "credential"),
            (
                Some("flx_api_****0001 (API key)".into()),
                "--api-key".into(),
                "flag".into()
            )
        );
    }

    // `config get credential`: the masked value alone on stdout.
    let r = sb
        .cmd(&["config", "get", "credential"])
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .run();
    r.ok();
    check(&r);
    assert_eq!(r.stdout, "flx_sa_****0002 (API key)\n");
    let r = sb
        .cmd(&["config", "get", "credential", "--api-key", FLAG_KEY])
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .run();
    r.ok();
    assert_eq!(r.stdout, "flx_api_****0001 (API key)\n");
    let r = sb.cmd(&["config", "get", "credential"]).run();
    r.ok();
    check(&r);
    assert_eq!(r.stdout, "flx_at_****0003 (login)\n");

    // FLUXLOOP_TOKEN sits between the API key variables and the profile.
    let token = "flx_at_RAWTOKENrawTOKENraw0006";
    let r = sb
        .cmd(&["config", "get", "credential", "--json"])
        .env("FLUXLOOP_TOKEN", token)
        .run();
    r.ok().no_secret(token);
    assert_eq!(r.json()["origin"], "environment variable FLUXLOOP_TOKEN");
    let r = sb
        .cmd(&["config", "get", "credential", "--json"])
        .env("FLUXLOOP_TOKEN", token)
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .run();
    r.ok().no_secret(token).no_secret(ENV_KEY);
    assert_eq!(r.json()["origin"], "environment variable FLUXLOOP_API_KEY");
}

#[test]
fn profile_flag_and_variable_pick_the_endpoint_from_the_credentials_file() {
    let sb = Sandbox::new();
    write_credentials(&sb, &two_profiles(), 0o600);
    let endpoint = |r: &Run| {
        r.ok();
        r.stdout.trim().to_string()
    };
    assert_eq!(
        endpoint(&sb.cmd(&["config", "get", "endpoint"]).run()),
        "https://api.fluxloop.example"
    );
    assert_eq!(
        endpoint(
            &sb.cmd(&["config", "get", "endpoint"])
                .env("FLUXLOOP_PROFILE", "staging")
                .run()
        ),
        "https://api-staging.fluxloop.example"
    );
    assert_eq!(
        endpoint(
            &sb.cmd(&["config", "get", "endpoint", "--profile", "staging"])
                .run()
        ),
        "https://api-staging.fluxloop.example"
    );
    // --profile beats FLUXLOOP_PROFILE.
    assert_eq!(
        endpoint(
            &sb.cmd(&["--profile", "production", "config", "get", "endpoint"])
                .env("FLUXLOOP_PROFILE", "staging")
                .run()
        ),
        "https://api.fluxloop.example"
    );
    // FLUXLOOP_API_ENDPOINT beats the profile's endpoint (a trailing / is
    // dropped), unless --profile names the profile: then its own endpoint
    // wins, as with `aws --profile`.
    let override_env = |args: &[&str]| {
        let r = sb
            .cmd(args)
            .env(
                "FLUXLOOP_API_ENDPOINT",
                "https://override.fluxloop.example/",
            )
            .run();
        r.ok();
        setting(&r, "endpoint")
    };
    assert_eq!(
        override_env(&["config", "list", "--json"]),
        (
            Some("https://override.fluxloop.example".into()),
            "environment variable FLUXLOOP_API_ENDPOINT".into(),
            "env".into()
        )
    );
    assert_eq!(
        override_env(&["config", "list", "--json", "--profile", "staging"]),
        (
            Some("https://api-staging.fluxloop.example".into()),
            format!("profile staging in {}", sb.credentials_path().display()),
            "profile".into()
        )
    );
    let r = sb
        .cmd(&["config", "list", "--json", "--profile", "staging"])
        .run();
    assert_eq!(
        setting(&r, "profile"),
        (Some("staging".into()), "--profile".into(), "flag".into())
    );
    // The origins of the profile itself.
    let r = sb
        .cmd(&["config", "list", "--json"])
        .env("FLUXLOOP_PROFILE", "staging")
        .run();
    r.ok();
    assert_eq!(
        setting(&r, "profile").1,
        "environment variable FLUXLOOP_PROFILE"
    );
    assert_eq!(
        setting(&r, "endpoint").1,
        format!("profile staging in {}", sb.credentials_path().display())
    );
    assert_eq!(
        setting(&r, "credential").0.as_deref(),
        Some("flx_at_****0005 (login)")
    );
    let r = sb.cmd(&["config", "list", "--json"]).run();
    assert_eq!(
        setting(&r, "profile").1,
        format!("default_profile in {}", sb.credentials_path().display())
    );
    r.no_secret(PROFILE_TOKEN);
}

#[test]
fn config_set_profile_creates_a_private_file_and_list_shows_it() {
    let sb = Sandbox::new();
    let r = sb.cmd(&["config", "set", "profile", "staging"]).run();
    r.ok();
    let path = sb.credentials_path();
    // An unknown profile is set, with a warning on stderr (issue 16).
    assert_eq!(
        r.stdout,
        format!("Set profile to staging in {}\n", path.display())
    );
    assert_eq!(
        r.stderr,
        format!("warning: profile staging is not in {} (known: none); log in to it with `fluxloop auth login --profile staging`\n", path.display())
    );
    let r = sb.cmd(&["config", "unset", "profile"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        format!("Removed profile (staging) from {}\n", path.display())
    );
    let r = sb.cmd(&["config", "unset", "profile"]).run();
    assert_eq!(
        r.stdout,
        format!("profile was not set in {}; nothing to do\n", path.display())
    );
    sb.cmd(&["config", "set", "profile", "staging"]).run().ok();
    assert_eq!(mode(&path), 0o600, "credentials file mode");
    assert_eq!(
        mode(&sb.fluxloop_home()),
        0o700,
        "credentials directory mode"
    );
    let doc = read_json(&path);
    assert_eq!(doc["default_profile"], "staging");
    assert!(
        doc["profiles"].is_object(),
        "written in the profiles layout: {doc}"
    );

    let r = sb.cmd(&["config", "list"]).run();
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("profile "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    // Whole, but for the padding of the columns.
    let origin = format!("default_profile in {}", path.display());
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["profile", "staging"]
            .into_iter()
            .chain(origin.split_whitespace())
            .collect::<Vec<_>>(),
        "{line}"
    );
    let r = sb.cmd(&["config", "list", "--json"]).run();
    assert_eq!(
        setting(&r, "profile"),
        (
            Some("staging".into()),
            format!("default_profile in {}", path.display()),
            "credentials_file".into()
        )
    );
    assert_eq!(
        sb.cmd(&["config", "get", "profile"]).run().stdout,
        "staging\n"
    );
}

#[test]
fn config_set_profile_keeps_logins_and_unknown_fields() {
    let sb = Sandbox::new();
    write_credentials(&sb, &two_profiles(), 0o600);
    let r = sb.cmd(&["config", "set", "profile", "staging"]).run();
    r.ok().no_secret(PROFILE_TOKEN);
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stdout.contains("has no login yet"), "{}", r.stdout);
    let doc = read_json(&sb.credentials_path());
    assert_eq!(doc["default_profile"], "staging");
    assert_eq!(doc["written_by"], "another tool");
    assert_eq!(doc["profiles"]["production"]["team"], "qa");
    assert_eq!(doc["profiles"]["production"]["access_token"], PROFILE_TOKEN);
    assert_eq!(
        doc["profiles"]["production"]["refresh_token"],
        PROFILE_REFRESH
    );
    assert_eq!(mode(&sb.credentials_path()), 0o600);
    // No temp file left beside it; the lock file stays, as cargo's does.
    let mut names: Vec<String> = std::fs::read_dir(sb.fluxloop_home())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["credentials", "credentials.lock"]);
}

#[test]
fn the_flat_layout_is_read_as_default_and_rewritten_as_profiles() {
    let sb = Sandbox::new();
    write_credentials(
        &sb,
        &serde_json::json!({
            "access_token": PROFILE_TOKEN,
            "refresh_token": PROFILE_REFRESH,
            "expires_at": "2099-11-02T10:00:00Z",
            "user_email": "user@example.com"
        }),
        0o600,
    );
    let r = sb.cmd(&["config", "get", "credential"]).run();
    r.ok().no_secret(PROFILE_TOKEN);
    assert_eq!(r.stdout, "flx_at_****0003 (login)\n");
    sb.cmd(&["config", "set", "endpoint", "https://api.fluxloop.example"])
        .run()
        .ok();
    let doc = read_json(&sb.credentials_path());
    assert_eq!(doc["profiles"]["default"]["access_token"], PROFILE_TOKEN);
    assert_eq!(doc["profiles"]["default"]["user_email"], "user@example.com");
    assert_eq!(
        doc["profiles"]["default"]["api_endpoint"],
        "https://api.fluxloop.example"
    );
    assert!(doc.get("access_token").is_none(), "{doc}");
}

#[test]
fn config_set_endpoint_validates_and_stores_in_the_profile() {
    let sb = Sandbox::new();
    write_credentials(&sb, &two_profiles(), 0o600);
    let before = std::fs::read_to_string(sb.credentials_path()).unwrap();
    for bad in [
        "ftp://files.example",
        "api.fluxloop.ai",
        "https://",
        "https://a b.example",
    ] {
        let r = sb.cmd(&["config", "set", "endpoint", bad]).run();
        r.code(2);
        assert!(
            r.stderr.starts_with("error: invalid endpoint"),
            "{bad}: {}",
            r.stderr
        );
        // substring: the rejected value differs per case; the error line is compared above
        r.stderr_has("hint: an endpoint looks like https://api.fluxloop.ai");
        assert_eq!(
            std::fs::read_to_string(sb.credentials_path()).unwrap(),
            before,
            "{bad} changed the file"
        );
    }
    let r = sb
        .cmd(&[
            "config",
            "set",
            "endpoint",
            "https://new.fluxloop.example/",
            "--profile",
            "staging",
        ])
        .run();
    assert_eq!(
        r.ok().stdout,
        format!(
            "Set endpoint to https://new.fluxloop.example in {}\n(for profile staging)\n",
            sb.credentials_path().display()
        )
    );
    let doc = read_json(&sb.credentials_path());
    assert_eq!(
        doc["profiles"]["staging"]["api_endpoint"],
        "https://new.fluxloop.example"
    );
    assert_eq!(
        doc["profiles"]["production"]["api_endpoint"],
        "https://api.fluxloop.example"
    );
    let r = sb
        .cmd(&["config", "get", "endpoint", "--profile", "staging"])
        .run();
    assert_eq!(r.stdout, "https://new.fluxloop.example\n");

    let r = sb.cmd(&["config", "set", "colour", "blue"]).run();
    assert_eq!(
        r.code(2).stderr,
        "error: unknown setting 'colour' for config set\n  hint: settable keys: profile, endpoint\n"
    );
}

#[test]
fn plain_http_off_loopback_is_refused() {
    let sb = Sandbox::new();
    // `.invalid` never resolves, so even a bug could not reach a real host.
    for args in NETWORK_COMMANDS {
        for (how, url) in [
            ("flag", "http://api.fluxloop.invalid"),
            ("env", "http://api.fluxloop.invalid:8080/"),
        ] {
            let mut cmd = sb.cmd(args).env("FLUXLOOP_API_KEY", ENV_KEY);
            cmd = if how == "flag" {
                cmd.arg("--endpoint").arg(url)
            } else {
                cmd.env("FLUXLOOP_API_ENDPOINT", url)
            };
            let r = cmd.run();
            r.no_secret(ENV_KEY);
            r.code(2);
            assert!(
                r.stderr.starts_with("error: refusing to send credentials over plain http to http://api.fluxloop.invalid"),
                "{args:?} via {how}: {}",
                r.stderr
            );
            // substring: the URL differs per case; the error line is compared above
            r.stderr_has("hint: use an https:// endpoint");
        }
    }
}

#[test]
fn a_corrupt_credentials_file_names_file_and_line_and_is_never_overwritten() {
    let sb = Sandbox::new();
    let text = format!("{{\n  \"profiles\": {{\n    \"default\": {{\"access_token\": \"{PROFILE_TOKEN}\",}}\n  }}\n}}\n");
    std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
    std::fs::write(sb.credentials_path(), &text).unwrap();
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let path = sb.credentials_path().display().to_string();
    for args in [
        &["config", "list"][..],
        &["config", "set", "profile", "x"],
        &["config", "get", "profile"],
        &["auth", "status"],
    ] {
        let r = sb.cmd(args).run();
        r.code(2).no_secret(PROFILE_TOKEN);
        assert!(
            r.stderr.starts_with(&format!("error: {path}:3:")),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            r.stderr,
            format!(
                "error: {path}:3:68: corrupt credentials file: trailing comma\n  hint: fix the file by hand, or move it away (mv {path} {path}.bak) and run `fluxloop auth login`\n"
            ),
            "{args:?}"
        );
        assert_eq!(
            std::fs::read_to_string(sb.credentials_path()).unwrap(),
            text,
            "{args:?} touched the file"
        );
    }
    // A CI job with an API key and an endpoint never reads the file.
    let r = sb
        .cmd(&["config", "get", "credential"])
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .env("FLUXLOOP_PROFILE", "ci")
        .env("FLUXLOOP_API_ENDPOINT", "https://api.fluxloop.example")
        .run();
    r.ok().no_secret(ENV_KEY);
}

#[test]
fn a_readable_credentials_file_gets_a_chmod_warning() {
    let sb = Sandbox::new();
    write_credentials(&sb, &two_profiles(), 0o644);
    let path = sb.credentials_path().display().to_string();
    let r = sb.cmd(&["config", "get", "profile"]).run();
    r.ok().no_secret(PROFILE_TOKEN);
    assert_eq!(r.stdout, "production\n");
    assert_eq!(
        r.stderr,
        format!(
            "warning: {path} is readable by other users (mode 0644); fix with: chmod 600 {path}\n"
        )
    );
    assert_eq!(
        r.stderr.matches("warning:").count(),
        1,
        "warned more than once: {}",
        r.stderr
    );
    // Fixed: no warning.
    std::fs::set_permissions(
        sb.credentials_path(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let r = sb.cmd(&["config", "get", "profile"]).run();
    r.ok();
    assert_eq!(r.stderr, "");
}

#[test]
fn a_typo_in_fluxloop_yaml_is_named_with_its_position() {
    let sb = Sandbox::new();
    sb.write(
        "fluxloop.yaml",
        "scenario: support-bot\nrunner:\n  type: process\n  comand: [\"python3\", \"agent.py\"]\n",
    );
    // Found from a subdirectory too.
    std::fs::create_dir_all(sb.work().join("src/deep")).unwrap();
    for cwd in [sb.work(), sb.work().join("src/deep")] {
        let r = sb.cmd(&["config", "list"]).cwd(&cwd).run();
        r.code(2);
        let path = sb.work().join("fluxloop.yaml");
        assert!(
            r.stderr.starts_with(&format!(
                "error: {}:4:3: runner.comand: unknown field, did you mean command?",
                path.display()
            )),
            "{}",
            r.stderr
        );
    }
    // A wrong type, and broken YAML.
    sb.write("fluxloop.yaml", "test:\n  parallel: many\n");
    let r = sb.cmd(&["config", "list"]).run();
    let yaml = sb.work().join("fluxloop.yaml").display().to_string();
    assert_eq!(
        r.code(2).stderr,
        format!(
            "error: {yaml}:2:13: test.parallel: invalid u32\n  hint: see the fluxloop.yaml reference in README.md\n"
        )
    );
    sb.write("fluxloop.yaml", "api:\n  endpoint: [unclosed\n");
    assert_eq!(
        sb.cmd(&["config", "list"]).run().code(2).stderr,
        format!(
            "error: {yaml}:2:13: api.endpoint: expected string scalar\n  hint: see the fluxloop.yaml reference in README.md\n"
        )
    );
    // --config must exist.
    let r = sb
        .cmd(&["config", "list", "--config", "nowhere.yaml"])
        .run();
    assert_eq!(
        r.code(2).stderr,
        format!(
            "error: config file (--config) not found: {}\n",
            sb.work().join("nowhere.yaml").display()
        )
    );
}

/// Every command path, for help and usage checks.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["auth"],
    &["auth", "login"],
    &["auth", "refresh"],
    &["auth", "logout"],
    &["auth", "status"],
    &["whoami"],
    &["apikeys"],
    &["apikeys", "create"],
    &["apikeys", "list"],
    &["apikeys", "info"],
    &["apikeys", "revoke"],
    &["config"],
    &["config", "set"],
    &["config", "get"],
    &["config", "list"],
    &["sync"],
    &["sync", "pull"],
    &["sync", "upload"],
    &["test"],
];

#[test]
fn help_for_every_command_exits_0_and_starts_with_usage() {
    let sb = Sandbox::new();
    for cmd in COMMANDS {
        for flag in ["--help", "-h"] {
            let mut args = cmd.to_vec();
            args.push(flag);
            let r = sb.cmd(&args).run();
            r.ok();
            assert!(
                r.stdout.starts_with("usage: fluxloop"),
                "{args:?}:\n{}",
                r.stdout
            );
            assert_eq!(r.stderr, "", "{args:?}");
        }
        if !cmd.is_empty() && cmd[0] != "whoami" {
            let mut args = vec!["help"];
            args.extend_from_slice(cmd);
            let r = sb.cmd(&args).run();
            r.ok();
            assert!(
                r.stdout.starts_with("usage: fluxloop"),
                "{args:?}:\n{}",
                r.stdout
            );
        }
    }
    // Help reads no configuration, even a broken one.
    sb.write("fluxloop.yaml", "nonsense: [\n");
    sb.cmd(&["sync", "pull", "--help"]).run().ok();
}

#[test]
fn version_names_the_target() {
    let sb = Sandbox::new();
    for flag in ["--version", "-V"] {
        let r = sb.cmd(&[flag]).run();
        r.ok();
        let prefix = format!("fluxloop {} (", env!("CARGO_PKG_VERSION"));
        assert!(
            r.stdout.starts_with(&prefix) && r.stdout.ends_with(")\n"),
            "{}",
            r.stdout
        );
        let target = &r.stdout[prefix.len()..r.stdout.len() - 2];
        let arch = std::env::consts::ARCH;
        assert!(target.starts_with(&format!("{arch}-")), "{target}");
        assert!(
            // substring: the target triple depends on the machine that built the binary
            target.contains("-linux-") || target.contains("-darwin"),
            "{target}"
        );
        assert_eq!(r.stdout.lines().count(), 1);
    }
}

#[test]
fn an_unknown_flag_exits_2_with_the_usage_line_of_its_command() {
    let sb = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["sync", "pull", "--bogus"], "usage: fluxloop sync pull"),
        (
            &["sync", "upload", "--bogus"],
            "usage: fluxloop sync upload",
        ),
        (
            &["config", "list", "--bogus"],
            "usage: fluxloop config list",
        ),
        (
            &["apikeys", "create", "--bogus"],
            "usage: fluxloop apikeys create",
        ),
        (&["auth", "login", "--bogus"], "usage: fluxloop auth login"),
        (&["test", "--bogus"], "usage: fluxloop test"),
        (&["--bogus"], "usage: fluxloop [OPTIONS] <COMMAND>"),
    ];
    for (args, usage) in cases {
        let r = sb.cmd(args).run();
        r.code(2);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        // substring: each command has its own usage hint, compared above
        r.stderr_has("--bogus");
        let hint = r
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("hint: usage:"))
            .unwrap_or_else(|| panic!("{args:?}: no usage hint:\n{}", r.stderr));
        assert!(
            hint.trim_start().starts_with(&format!("hint: {usage}")),
            "{args:?}: {hint}"
        );
        // substring: each command has its own usage hint, compared above
        r.stderr_has("--help` for more");
        assert_eq!(r.stdout, "", "{args:?}");
    }
    // A mistyped command gets a suggestion.
    assert_eq!(
        sb.cmd(&["snyc", "pull"]).run().code(2).stderr,
        "error: unknown command 'snyc' (did you mean 'sync'?)\n  hint: usage: fluxloop [OPTIONS] <COMMAND>\n  hint: run `fluxloop --help` for more\n"
    );
    assert_eq!(
        sb.cmd(&["config", "lst"]).run().code(2).stderr,
        "error: unknown command 'lst' (did you mean 'list'?)\n  hint: usage: fluxloop config <set|unset|get|list> [OPTIONS]\n  hint: run `fluxloop config --help` for more\n"
    );
    assert_eq!(
        sb.cmd(&[]).run().code(2).stderr,
        "error: no command given\n  hint: usage: fluxloop [OPTIONS] <COMMAND>\n  hint: run `fluxloop --help` for more\n"
    );
}

/// One `--json` error case: arguments, extra environment, exit code, error code.
type JsonCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn json_errors_are_one_document_on_stdout() {
    let sb = Sandbox::new();
    let wire = Tripwire::new();
    let cases: &[JsonCase] = &[
        (
            &["config", "set", "colour", "blue", "--json"],
            &[],
            2,
            "config",
        ),
        (
            &["--json", "auth", "status"],
            &[("FLUXLOOP_API_KEY", "flx_api_SECRETPART")],
            3,
            "invalid_api_key",
        ),
        (
            &["config", "get", "scenario", "--json"],
            &[],
            5,
            "not_found",
        ),
        (&["apikeys", "list", "--json"], &[], 3, "no_credential"),
        // Usage errors too, though --json is read before parsing succeeds.
        (&["--json", "test", "--paralel", "2"], &[], 2, "usage"),
        (&["help", "nothing", "--json"], &[], 2, "usage"),
    ];
    for (args, env, code, kind) in cases {
        let mut cmd = sb.cmd(args).env("FLUXLOOP_API_ENDPOINT", wire.url());
        for (k, v) in *env {
            cmd = cmd.env(k, v);
        }
        let r = cmd.run();
        r.code(*code).no_secret("SECRETPART");
        let doc = r.json();
        let obj = doc.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{doc}");
        assert_eq!(doc["schema_version"], 1, "{doc}");
        let err = &doc["error"];
        assert_eq!(err["code"], *kind, "{args:?}: {doc}");
        assert_eq!(err["exit_code"], *code, "{doc}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{doc}"
        );
        assert!(err["hint"].is_string(), "{doc}");
        assert!(
            // substring: an absence, which must hold anywhere in the text
            !r.stderr.contains("error:"),
            "{args:?}: error also on stderr: {}",
            r.stderr
        );
    }
    wire.assert_untouched("json errors");
    // --version and help are documents too.
    let r = sb.cmd(&["--version", "--json"]).run();
    r.ok();
    let doc = r.json();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    // substring: the target triple depends on the machine that built the binary
    assert!(doc["target"].as_str().unwrap().contains("linux"), "{doc}");
    let r = sb.cmd(&["--json", "help", "test"]).run();
    r.ok();
    assert!(r.json()["help"]
        .as_str()
        .unwrap()
        .starts_with("usage: fluxloop test"));
}

#[test]
fn no_credential_exits_3_listing_every_way_to_give_one() {
    let sb = Sandbox::new();
    let wire = Tripwire::new();
    for args in NETWORK_COMMANDS {
        if args[0] == "auth" {
            continue; // status reports "not logged in" its own way
        }
        let r = sb.cmd(args).env("FLUXLOOP_API_ENDPOINT", wire.url()).run();
        assert_eq!(r.code(3).stderr, "error: no credential found\n  hint: pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN\n  hint: or set api.key_file in fluxloop.yaml\n  hint: or run `fluxloop auth login` to store a login in the credentials file\n", "{args:?}");
    }
    wire.assert_untouched("no credential");
    let r = sb.cmd(&["config", "list", "--json"]).run();
    r.ok();
    assert_eq!(
        setting(&r, "credential"),
        (None, "none found".into(), "none".into())
    );
}

#[test]
fn verbose_traces_mask_the_key() {
    // A loopback listener that answers 401 once, so a request (and its
    // trace) really happens.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        listener.set_nonblocking(false).unwrap();
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"error":{"code":"unauthenticated","message":"unknown key"}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["auth", "status", "-v"])
        .env("FLUXLOOP_API_KEY", ENV_KEY)
        .env("FLUXLOOP_API_ENDPOINT", &url)
        .run();
    r.no_secret(ENV_KEY).no_secret("ENVenvENVenv");
    // substring: the verbose trace around it names the random port and timings
    r.stderr_has("authorization: Bearer flx_sa_****0002");
    drop(server);
}

#[test]
fn a_question_without_a_terminal_fails_instead_of_hanging() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let admin = p
        .create_key(&demo.project_id, "admin", "user", "admin")
        .unwrap();
    let victim = p
        .create_key(&demo.project_id, "victim", "service-account", "read")
        .unwrap();
    let sb = Sandbox::new();
    // Typing "y" on a pipe is not an answer: only a terminal or --yes is.
    let r = sb
        .cmd(&["apikeys", "revoke", &victim.id])
        .env("FLUXLOOP_API_KEY", &admin.key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .stdin("y\n")
        .run();
    r.code(2).no_secret(&admin.key).no_secret(&victim.key);
    assert_eq!(
        r.stderr,
        format!(
            "error: Revoke key {}? It stops working at once, but there is no terminal to ask on\n  hint: rerun with --yes to answer yes without a prompt\n",
            victim.id
        )
    );
    assert!(
        !p.requests().iter().any(|q| q.path.ends_with("/revoke")),
        "revoked without an answer"
    );
    // The key still works.
    sb.cmd(&["auth", "status"])
        .env("FLUXLOOP_API_KEY", &victim.key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .run()
        .ok()
        .no_secret(&victim.key);
}

#[test]
fn the_credentials_file_lives_in_fluxloop_home_else_under_home() {
    let sb = Sandbox::new();
    let r = sb.cmd(&["config", "list", "--json"]).run();
    r.ok();
    assert_eq!(
        setting(&r, "credentials_file"),
        (
            Some(sb.credentials_path().display().to_string()),
            "environment variable FLUXLOOP_HOME".into(),
            "env".into()
        )
    );
    let r = sb
        .cmd(&["config", "get", "credentials_file"])
        .env_remove("FLUXLOOP_HOME")
        .run();
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", sb.home().join(".fluxloop/credentials").display())
    );
    let r = sb
        .cmd(&["config", "list"])
        .env_remove("FLUXLOOP_HOME")
        .env_remove("HOME")
        .run();
    assert_eq!(
        r.code(2).stderr,
        "error: cannot find the home directory: neither FLUXLOOP_HOME nor HOME is set\n  hint: set FLUXLOOP_HOME to a directory for fluxloop's credentials\n"
    );
}

#[test]
fn a_closed_stdout_is_not_a_failure() {
    use std::os::fd::FromRawFd;
    let sb = Sandbox::new();
    for args in [
        &["--help"][..],
        &["test", "--help"],
        &["--version"],
        &["config", "list"],
    ] {
        // A pipe whose reading end is already closed: every write fails with EPIPE,
        // as with `fluxloop … | head -1` once head has exited.
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        unsafe { libc::close(fds[0]) };
        let stdout = unsafe { std::process::Stdio::from_raw_fd(fds[1]) };
        let out = sb
            .cmd(args)
            .command()
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
