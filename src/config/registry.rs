//! Every setting, declared once: its key, where a value may come from (in
//! order, first match wins), its default, and whether it is secret.
//!
//! Resolution ([`super::settings`]) walks these sources generically, so a new
//! environment variable for an existing setting is one more [`Source::Env`]
//! line here (and its row in README.md's environment table, which a test
//! checks): `config list`, `config get` and the setting's typed value pick it
//! up without further changes.

use super::resolve::DEFAULT_ENDPOINT;

/// Where a value may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A command-line flag, as the parser collected it.
    Flag(&'static str),
    /// An environment variable; an empty value counts as unset.
    Env(&'static str),
    /// A key of `fluxloop.yaml`, dotted (`api.endpoint`).
    Yaml(&'static str),
    /// A field of `.fluxloop/project.json` (FluxLoop CLI 0.4).
    ProjectJson(&'static str),
    /// A field of the profile `--profile` names: `--profile` picks that
    /// profile's platform and login over the environment, as `aws --profile`.
    FlagProfile(ProfileField),
    /// A field of the profile in effect (the `profile` setting).
    Profile(ProfileField),
    /// `default_profile` in the credentials file.
    DefaultProfile,
}

/// The fields of a stored profile a setting can come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProfileField {
    /// `api_endpoint`.
    Endpoint,
    /// The stored login (its access token).
    Login,
}

/// What a setting is when no source gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// This value, with origin `default`.
    Value(&'static str),
    /// Nothing; the text says what that means (`config list` shows it).
    Unset(&'static str),
}

/// One setting.
#[derive(Debug)]
pub(crate) struct Decl {
    /// The name `config get` and `config list` use.
    pub(crate) key: &'static str,
    /// Other names `config get` accepts.
    pub(crate) aliases: &'static [&'static str],
    /// Highest first.
    pub(crate) sources: &'static [Source],
    pub(crate) fallback: Fallback,
    /// Every source counts, not only the first (CA certificates).
    pub(crate) additive: bool,
    /// Shown masked, never whole.
    pub(crate) secret: bool,
    /// One line for `config list --json` and the docs.
    pub(crate) about: &'static str,
}

use ProfileField::{Endpoint, Login};
use Source::{DefaultProfile, Env, Flag, FlagProfile, Profile, ProjectJson, Yaml};

const fn decl(
    key: &'static str,
    sources: &'static [Source],
    fallback: Fallback,
    about: &'static str,
) -> Decl {
    Decl {
        key,
        aliases: &[],
        sources,
        fallback,
        additive: false,
        secret: false,
        about,
    }
}

/// Every setting, in the order `config list` shows them.
pub(crate) static SETTINGS: &[Decl] = &[
    Decl {
        aliases: &["default_profile"],
        ..decl(
            "profile",
            &[Flag("--profile"), Env("FLUXLOOP_PROFILE"), DefaultProfile],
            Fallback::Value("default"),
            "the credentials profile",
        )
    },
    Decl {
        aliases: &["api_endpoint"],
        ..decl(
            "endpoint",
            &[
                Flag("--endpoint"),
                FlagProfile(Endpoint),
                Env("FLUXLOOP_API_ENDPOINT"),
                Env("FLUXLOOP_API_URL"),
                Yaml("api.endpoint"),
                ProjectJson("api_url"),
                Profile(Endpoint),
            ],
            Fallback::Value(DEFAULT_ENDPOINT),
            "the platform's API",
        )
    },
    Decl {
        secret: true,
        ..decl(
            "credential",
            &[
                Flag("--api-key"),
                FlagProfile(Login),
                Env("FLUXLOOP_API_KEY"),
                Env("FLUXLOOP_SYNC_API_KEY"),
                Env("FLUXLOOP_TOKEN"),
                // The CI's OIDC identity (auth/oidc.rs SOURCE_VARS), exchanged.
                Env("ACTIONS_ID_TOKEN_REQUEST_URL"),
                Env("FLUXLOOP_ID_TOKEN"),
                Env("FLUXLOOP_OIDC_TOKEN"),
                Env("FLUXLOOP_OIDC_TOKEN_FILE"),
                Yaml("api.key_file"),
                Profile(Login),
            ],
            Fallback::Unset("none found"),
            "the API key or login sent to the platform",
        )
    },
    decl(
        "oidc",
        &[
            Flag("--oidc"),
            Env("FLUXLOOP_OIDC"),
            Yaml("oidc.enabled"),
            Yaml("oidc"),
        ],
        Fallback::Unset("auto (used when the CI offers an OIDC token)"),
        "keyless CI: true requires the CI's OIDC identity, false never uses it",
    ),
    decl(
        "oidc.audience",
        &[Env("FLUXLOOP_OIDC_AUDIENCE"), Yaml("oidc.audience")],
        Fallback::Value(crate::auth::oidc::DEFAULT_AUDIENCE),
        "the audience of the OIDC token requested and exchanged",
    ),
    decl(
        "scenario",
        &[
            Flag("--scenario"),
            Env("FLUXLOOP_SCENARIO"),
            Yaml("scenario"),
        ],
        Fallback::Unset("not set (pass --scenario)"),
        "the scenario pulled and run",
    ),
    decl(
        "project_id",
        &[
            Flag("--project-id"),
            Yaml("project_id"),
            ProjectJson("project_id"),
        ],
        Fallback::Unset("not set (the platform picks)"),
        "the project pulled from",
    ),
    decl(
        "config_file",
        &[Flag("--config")],
        Fallback::Unset("no fluxloop.yaml found"),
        "fluxloop.yaml: --config, else the nearest one upward",
    ),
    decl(
        "credentials_file",
        &[Env("FLUXLOOP_HOME")],
        Fallback::Unset("~/.fluxloop/credentials"),
        "the stored logins: FLUXLOOP_HOME/credentials, else ~/.fluxloop/credentials",
    ),
    decl(
        "workspace",
        &[],
        Fallback::Unset("the nearest directory upward with fluxloop.yaml or .fluxloop/"),
        "where pulled scenarios and results live",
    ),
    decl(
        "web_url",
        &[Env("FLUXLOOP_WEB_URL"), Yaml("api.web_url")],
        Fallback::Unset("not set (the upload's link, or derived from the endpoint)"),
        "where the results link points",
    ),
    decl(
        "http_timeout",
        &[Env("FLUXLOOP_HTTP_TIMEOUT"), Yaml("api.timeout")],
        Fallback::Value("60"),
        "seconds for a whole request",
    ),
    decl(
        "connect_timeout",
        &[Env("FLUXLOOP_CONNECT_TIMEOUT"), Yaml("api.connect_timeout")],
        Fallback::Value("10"),
        "seconds to connect",
    ),
    decl(
        "http_retries",
        &[Env("FLUXLOOP_HTTP_RETRIES"), Yaml("api.retries")],
        Fallback::Value("4"),
        "retries after the first attempt",
    ),
    decl(
        "retry_backoff_ms",
        &[Env("FLUXLOOP_RETRY_BACKOFF_MS")],
        Fallback::Value("500"),
        "the first retry's wait in milliseconds, doubling per attempt",
    ),
    Decl {
        additive: true,
        ..decl(
            "ca_cert",
            &[Yaml("api.ca_cert"), Env("SSL_CERT_FILE"), Flag("--ca-cert")],
            Fallback::Unset("not set (the bundled roots only)"),
            "extra CA certificates (PEM files), all added together",
        )
    },
    decl(
        "ca_dir",
        &[Env("SSL_CERT_DIR")],
        Fallback::Unset("not set"),
        "a directory of extra CA certificates",
    ),
    decl(
        "https_proxy",
        &[
            Env("HTTPS_PROXY"),
            Env("https_proxy"),
            Env("ALL_PROXY"),
            Env("all_proxy"),
        ],
        Fallback::Unset("not set (direct)"),
        "the proxy for an https endpoint",
    ),
    // Lower-case http_proxy first, as curl: HTTP_PROXY can be set by a CGI
    // request header ("httpoxy").
    decl(
        "http_proxy",
        &[
            Env("http_proxy"),
            Env("HTTP_PROXY"),
            Env("ALL_PROXY"),
            Env("all_proxy"),
        ],
        Fallback::Unset("not set (direct)"),
        "the proxy for an http endpoint",
    ),
    decl(
        "no_proxy",
        &[Env("NO_PROXY"), Env("no_proxy")],
        Fallback::Unset("not set"),
        "hosts reached without the proxy",
    ),
    decl(
        "test.iterations",
        &[Flag("--iterations"), Yaml("test.iterations")],
        Fallback::Value("1"),
        "runs of each input",
    ),
    decl(
        "test.parallel",
        &[Flag("--parallel"), Yaml("test.parallel")],
        Fallback::Value("1"),
        "runs at a time",
    ),
    decl(
        "test.timeout",
        &[Flag("--timeout"), Yaml("test.timeout")],
        Fallback::Value("300"),
        "seconds per run",
    ),
    decl(
        "test.auto_upload",
        &[Flag("--skip-upload"), Yaml("test.auto_upload")],
        Fallback::Value("true"),
        "whether `test` uploads its results",
    ),
    decl(
        "test.retries",
        &[Flag("--retries"), Yaml("test.retries")],
        Fallback::Value("0"),
        "retries of a failed run",
    ),
    decl(
        "test.pass_rate",
        &[Flag("--fail-under"), Yaml("test.pass_rate")],
        Fallback::Unset("not set (every run must pass)"),
        "the pass rate below which `test` fails",
    ),
    decl(
        "test.max_failures",
        &[Flag("--max-failures"), Yaml("test.max_failures")],
        Fallback::Unset("not set (no limit)"),
        "failures after which no new run starts",
    ),
    decl(
        "test.rate",
        &[Flag("--rate"), Yaml("test.rate")],
        Fallback::Unset("not set (no limit)"),
        "run starts per second or minute",
    ),
    decl(
        "test.shard",
        &[Flag("--shard"), Yaml("test.shard")],
        Fallback::Unset("not set (every run)"),
        "the part of the runs this job runs: I/N or auto",
    ),
    decl(
        "batch_key",
        &[Flag("--batch-key"), Env("FLUXLOOP_BATCH_KEY")],
        Fallback::Unset("not set (derived from the CI run when sharded)"),
        "the run batch the shards of one job share",
    ),
    decl(
        "runner.type",
        &[Yaml("runner.type")],
        Fallback::Value("process"),
        "process or function",
    ),
    decl(
        "runner.command",
        &[Flag("--"), Yaml("runner.command")],
        Fallback::Unset("not set (give it after --)"),
        "the agent's command line",
    ),
    decl(
        "runner.target",
        &[Yaml("runner.target")],
        Fallback::Unset("not set"),
        "module:function for type: function",
    ),
    decl(
        "runner.working_directory",
        &[Yaml("runner.working_directory")],
        Fallback::Unset("not set (the workspace)"),
        "where the agent runs",
    ),
    decl(
        "runner.python",
        &[Yaml("runner.python")],
        Fallback::Value("python3"),
        "the interpreter for type: function",
    ),
];

/// The declaration of `key` (or one of its aliases).
pub(crate) fn find(key: &str) -> Option<&'static Decl> {
    SETTINGS
        .iter()
        .find(|d| d.key == key || d.aliases.contains(&key))
}

/// The declaration of a key the code names; a typo is a bug caught by tests.
pub(crate) fn get(key: &str) -> &'static Decl {
    find(key).unwrap_or_else(|| panic!("setting {key} is not declared"))
}

/// Every environment variable any setting reads.
#[cfg(test)]
fn env_vars() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().flat_map(|d| {
        d.sources.iter().filter_map(|s| match s {
            Source::Env(name) => Some(*name),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variable a setting reads has its row in README.md's table of
    /// environment variables, and each FLUXLOOP_ row there is read by a
    /// setting or by a documented exception.
    #[test]
    fn every_variable_is_documented_and_every_documented_one_is_declared() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Environment variables")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README.md has an Environment variables section");
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
        for var in env_vars() {
            // The proxy variables' lower-case forms share their row.
            let upper = var.to_ascii_uppercase();
            assert!(
                rows.iter().any(|r| r.contains(&format!("`{upper}`"))),
                "{var} is read by a setting but has no row in README.md's environment table"
            );
        }
        // Read outside the registry: the credential chain's own variables
        // are declared; these decide other things (the home, sharding).
        let elsewhere = ["FLUXLOOP_SHARD", "FLUXLOOP_SHARD_TOTAL"];
        for row in rows {
            let documented = row
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|v| v.starts_with("FLUXLOOP_"));
            for var in documented {
                assert!(
                    env_vars().any(|v| v == var) || elsewhere.contains(&var),
                    "README.md documents {var}, which no setting declares"
                );
            }
        }
    }

    #[test]
    fn keys_and_aliases_are_unique() {
        let mut names: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|d| std::iter::once(d.key).chain(d.aliases.iter().copied()))
            .collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
