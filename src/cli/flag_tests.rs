//! One test per flag of every command, in the manner of ripgrep's per-flag
//! tests (`flags/defs.rs`): each parses the flag in every spelling (`--x v`,
//! `--x=v`, the short form), checks the typed value in the `*Args` it lands
//! in, its value when the flag is absent, and that the last one wins.
//! [`every_flag_of_the_table_has_its_test`] holds this file to the command
//! table, so a flag added to a help text fails until it has a test here.

use std::path::PathBuf;

use super::table::{global_options, options, COMMANDS};
use super::{
    parse, ApikeysCommand, AuthCommand, ColorChoice, Command, GlobalArgs, InitArgs, KeyType,
    Parsed, PullArgs, ReportArgs, Scope, SyncCommand, TestArgs, UploadArgs,
};
use crate::config::project::limits::{Rate, Shard, ShardSpec};
use crate::error::Error;

/// `--long VALUE`, `--long=VALUE` and, if there is one, `-s VALUE`.
fn spelled(long: &str, short: Option<char>, value: &str) -> Vec<Vec<String>> {
    let mut forms = vec![
        vec![long.to_string(), value.to_string()],
        vec![format!("{long}={value}")],
    ];
    if let Some(s) = short {
        forms.push(vec![format!("-{s}"), value.to_string()]);
    }
    forms
}

/// `--long` and, if there is one, `-s`: a switch.
fn switched(long: &str, short: Option<char>) -> Vec<Vec<String>> {
    let mut forms = vec![vec![long.to_string()]];
    if let Some(s) = short {
        forms.push(vec![format!("-{s}")]);
    }
    forms
}

fn run<S: AsRef<str>>(args: &[S]) -> (GlobalArgs, Command) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    match parse(args.iter().copied()) {
        Ok(Parsed::Run(g, c)) => (g, c),
        other => panic!("{args:?}: {other:?}"),
    }
}

/// `path` followed by `extra`.
fn line<S: AsRef<str>>(path: &[&str], extra: &[S]) -> Vec<String> {
    path.iter()
        .map(|s| s.to_string())
        .chain(extra.iter().map(|s| s.as_ref().to_string()))
        .collect()
}

fn usage_message<S: AsRef<str>>(args: &[S]) -> String {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    match parse(args.iter().copied()) {
        Err(Error::Usage { message, .. }) => message,
        other => panic!("{args:?}: expected a usage error, got {other:?}"),
    }
}

fn test_args<S: AsRef<str>>(extra: &[S]) -> TestArgs {
    match run(&line(&["test"], extra)).1 {
        Command::Test(a) => a,
        other => panic!("{other:?}"),
    }
}

fn report_args<S: AsRef<str>>(extra: &[S]) -> ReportArgs {
    match run(&line(&["report"], extra)).1 {
        Command::Report(a) => a,
        other => panic!("{other:?}"),
    }
}

fn init_args<S: AsRef<str>>(extra: &[S]) -> InitArgs {
    match run(&line(&["init"], extra)).1 {
        Command::Init(a) => a,
        other => panic!("{other:?}"),
    }
}

fn pull_args<S: AsRef<str>>(extra: &[S]) -> PullArgs {
    match run(&line(&["sync", "pull"], extra)).1 {
        Command::Sync(SyncCommand::Pull(a)) => a,
        other => panic!("{other:?}"),
    }
}

fn upload_args<S: AsRef<str>>(extra: &[S]) -> UploadArgs {
    match run(&line(&["sync", "upload"], extra)).1 {
        Command::Sync(SyncCommand::Upload(a)) => a,
        other => panic!("{other:?}"),
    }
}

/// `auth login`'s `(no_browser, force)`.
fn login_args<S: AsRef<str>>(extra: &[S]) -> (bool, bool) {
    match run(&line(&["auth", "login"], extra)).1 {
        Command::Auth(AuthCommand::Login { no_browser, force }) => (no_browser, force),
        other => panic!("{other:?}"),
    }
}

/// `auth logout`'s `all`.
fn logout_all<S: AsRef<str>>(extra: &[S]) -> bool {
    match run(&line(&["auth", "logout"], extra)).1 {
        Command::Auth(AuthCommand::Logout { all }) => all,
        other => panic!("{other:?}"),
    }
}

/// The fields of `apikeys create`.
#[derive(Debug, PartialEq)]
struct Create {
    name: Option<String>,
    key_type: KeyType,
    scope: Scope,
    project_id: Option<String>,
    expires_in_days: Option<u32>,
}

fn create_args<S: AsRef<str>>(extra: &[S]) -> Create {
    match run(&line(&["apikeys", "create"], extra)).1 {
        Command::Apikeys(ApikeysCommand::Create {
            name,
            key_type,
            scope,
            project_id,
            expires_in_days,
        }) => Create {
            name,
            key_type,
            scope,
            project_id,
            expires_in_days,
        },
        other => panic!("{other:?}"),
    }
}

/// `apikeys list`'s `(project_id, all)`.
fn list_args<S: AsRef<str>>(extra: &[S]) -> (Option<String>, bool) {
    match run(&line(&["apikeys", "list"], extra)).1 {
        Command::Apikeys(ApikeysCommand::List { project_id, all }) => (project_id, all),
        other => panic!("{other:?}"),
    }
}

/// The global flags of `extra`, given both before and after a subcommand.
fn globals<S: AsRef<str>>(extra: &[S]) -> GlobalArgs {
    let mut before = line(&[], extra);
    before.extend(["sync".to_string(), "pull".to_string()]);
    let before = run(&before).0;
    let after = run(&line(&["sync", "pull"], extra)).0;
    assert_eq!(
        format!("{before:?}"),
        format!("{after:?}"),
        "{:?}",
        line(&[], extra)
    );
    after
}

const NONE: &[&str] = &[];

// ---- global flags -------------------------------------------------------

#[test]
fn global_profile() {
    assert_eq!(globals(NONE).profile, None);
    for args in spelled("--profile", None, "staging") {
        assert_eq!(
            globals(&args).profile.as_deref(),
            Some("staging"),
            "{args:?}"
        );
    }
    let g = globals(&["--profile", "a", "--profile", "b"]);
    assert_eq!(g.profile.as_deref(), Some("b"), "last wins");
}

#[test]
fn global_api_key() {
    assert_eq!(globals(NONE).api_key, None);
    for args in spelled("--api-key", None, "flx_sa_k") {
        assert_eq!(
            globals(&args).api_key.as_deref(),
            Some("flx_sa_k"),
            "{args:?}"
        );
    }
    let g = globals(&["--api-key", "a", "--api-key=b"]);
    assert_eq!(g.api_key.as_deref(), Some("b"), "last wins");
}

#[test]
fn global_oidc() {
    assert_eq!(globals(NONE).oidc, None);
    assert_eq!(globals(&["--oidc"]).oidc, Some(true));
    assert_eq!(
        globals(&["--no-oidc", "--oidc"]).oidc,
        Some(true),
        "last wins"
    );
}

#[test]
fn global_no_oidc() {
    assert_eq!(globals(&["--no-oidc"]).oidc, Some(false));
    assert_eq!(
        globals(&["--oidc", "--no-oidc"]).oidc,
        Some(false),
        "last wins"
    );
}

#[test]
fn global_endpoint() {
    assert_eq!(globals(NONE).endpoint, None);
    for flag in ["--endpoint", "--api-url"] {
        for args in spelled(flag, None, "https://x.example") {
            let g = globals(&args);
            assert_eq!(g.endpoint.as_deref(), Some("https://x.example"), "{args:?}");
        }
    }
    let g = globals(&["--api-url", "https://a", "--endpoint", "https://b"]);
    assert_eq!(g.endpoint.as_deref(), Some("https://b"), "last wins");
}

#[test]
fn global_config() {
    assert_eq!(globals(NONE).config, None);
    for args in spelled("--config", None, "ci/fluxloop.yaml") {
        let g = globals(&args);
        assert_eq!(
            g.config,
            Some(PathBuf::from("ci/fluxloop.yaml")),
            "{args:?}"
        );
    }
    let g = globals(&["--config", "a.yaml", "--config", "b.yaml"]);
    assert_eq!(g.config, Some(PathBuf::from("b.yaml")), "last wins");
}

#[test]
fn global_ca_cert() {
    assert_eq!(globals(NONE).ca_cert, None);
    for args in spelled("--ca-cert", None, "ca.pem") {
        assert_eq!(
            globals(&args).ca_cert,
            Some(PathBuf::from("ca.pem")),
            "{args:?}"
        );
    }
    let g = globals(&["--ca-cert", "a.pem", "--ca-cert=b.pem"]);
    assert_eq!(g.ca_cert, Some(PathBuf::from("b.pem")), "last wins");
}

#[test]
fn global_yes() {
    assert!(!globals(NONE).yes);
    for args in switched("--yes", Some('y')) {
        assert!(globals(&args).yes, "{args:?}");
    }
}

#[test]
fn global_json() {
    assert!(!globals(NONE).json);
    for args in switched("--json", None) {
        assert!(globals(&args).json, "{args:?}");
    }
}

#[test]
fn global_quiet() {
    assert!(!globals(NONE).quiet);
    for args in switched("--quiet", Some('q')) {
        assert!(globals(&args).quiet, "{args:?}");
    }
}

#[test]
fn global_verbose() {
    assert_eq!(globals(NONE).verbose, 0);
    for args in switched("--verbose", Some('v')) {
        assert_eq!(globals(&args).verbose, 1, "{args:?}");
    }
    assert_eq!(globals(&["-vv", "--verbose"]).verbose, 3, "it counts");
}

#[test]
fn global_color() {
    assert_eq!(globals(NONE).color, None);
    for (value, want) in [
        ("auto", ColorChoice::Auto),
        ("always", ColorChoice::Always),
        ("never", ColorChoice::Never),
    ] {
        for flag in ["--color", "--colour"] {
            for args in spelled(flag, None, value) {
                assert_eq!(globals(&args).color, Some(want), "{args:?}");
            }
        }
    }
    let g = globals(&["--color", "never", "--color=always"]);
    assert_eq!(g.color, Some(ColorChoice::Always), "last wins");
    assert_eq!(
        usage_message(&["--color", "sometimes", "whoami"]),
        "invalid value 'sometimes' (choose from: auto, always, never) for --color"
    );
}

#[test]
fn global_no_color() {
    for args in switched("--no-color", None) {
        assert_eq!(globals(&args).color, Some(ColorChoice::Never), "{args:?}");
    }
    let g = globals(&["--no-color", "--color", "always"]);
    assert_eq!(g.color, Some(ColorChoice::Always), "last wins");
    let g = globals(&["--color", "always", "--no-color"]);
    assert_eq!(g.color, Some(ColorChoice::Never), "last wins");
}

#[test]
fn global_help() {
    for args in switched("--help", Some('h')) {
        assert!(
            matches!(parse(&args), Ok(Parsed::Help(h)) if h == super::help::TOP),
            "{args:?}"
        );
        let args = line(&["sync", "pull"], &args);
        assert!(
            matches!(parse(&args), Ok(Parsed::Help(h)) if h == super::help::SYNC_PULL),
            "{args:?}"
        );
    }
}

#[test]
fn global_version() {
    for args in switched("--version", Some('V')) {
        assert!(matches!(parse(&args), Ok(Parsed::Version)), "{args:?}");
    }
}

// ---- auth ---------------------------------------------------------------

#[test]
fn auth_login_no_browser() {
    assert_eq!(login_args(NONE), (false, false));
    for args in switched("--no-browser", None) {
        assert_eq!(login_args(&args), (true, false), "{args:?}");
    }
}

#[test]
fn auth_login_force() {
    for args in switched("--force", Some('f')) {
        assert_eq!(login_args(&args), (false, true), "{args:?}");
    }
}

#[test]
fn auth_logout_all() {
    assert!(!logout_all(NONE));
    for args in switched("--all", None) {
        assert!(logout_all(&args), "{args:?}");
    }
}

// ---- apikeys ------------------------------------------------------------

/// `apikeys create` with no flags.
fn create_default() -> Create {
    Create {
        name: None,
        key_type: KeyType::User,
        scope: Scope::ReadWrite,
        project_id: None,
        expires_in_days: None,
    }
}

#[test]
fn apikeys_create_name() {
    assert_eq!(create_args(NONE), create_default());
    for args in spelled("--name", Some('n'), "ci key") {
        assert_eq!(
            create_args(&args).name.as_deref(),
            Some("ci key"),
            "{args:?}"
        );
    }
    let a = create_args(&["-n", "a", "--name", "b"]);
    assert_eq!(a.name.as_deref(), Some("b"), "last wins");
    assert_eq!(
        usage_message(&["apikeys", "create", "--name", " "]),
        "--name must not be empty"
    );
}

#[test]
fn apikeys_create_type() {
    for (value, want) in [
        ("user", KeyType::User),
        ("service-account", KeyType::ServiceAccount),
        ("service_account", KeyType::ServiceAccount),
        ("sa", KeyType::ServiceAccount),
    ] {
        for args in spelled("--type", Some('t'), value) {
            assert_eq!(create_args(&args).key_type, want, "{args:?}");
        }
    }
    let a = create_args(&["-t", "sa", "--type", "user"]);
    assert_eq!(a.key_type, KeyType::User, "last wins");
    assert_eq!(
        usage_message(&["apikeys", "create", "--type", "robot"]),
        "invalid key type 'robot' (choose from: user, service-account) for --type"
    );
}

#[test]
fn apikeys_create_scope() {
    for (value, want) in [
        ("read", Scope::Read),
        ("write", Scope::Write),
        ("read-write", Scope::ReadWrite),
        ("readwrite", Scope::ReadWrite),
        ("rw", Scope::ReadWrite),
        ("admin", Scope::Admin),
    ] {
        for args in spelled("--scope", Some('s'), value) {
            assert_eq!(create_args(&args).scope, want, "{args:?}");
        }
    }
    let a = create_args(&["-s", "admin", "--scope", "read"]);
    assert_eq!(a.scope, Scope::Read, "last wins");
}

#[test]
fn apikeys_create_project_id() {
    for args in spelled("--project-id", None, "p-1") {
        let a = create_args(&args);
        assert_eq!(a.project_id.as_deref(), Some("p-1"), "{args:?}");
    }
    let a = create_args(&["--project-id", "a", "--project-id=b"]);
    assert_eq!(a.project_id.as_deref(), Some("b"), "last wins");
}

#[test]
fn apikeys_create_expires_in_days() {
    for args in spelled("--expires-in-days", None, "30") {
        assert_eq!(create_args(&args).expires_in_days, Some(30), "{args:?}");
    }
    let a = create_args(&["--expires-in-days", "7", "--expires-in-days", "1"]);
    assert_eq!(a.expires_in_days, Some(1), "last wins");
    assert_eq!(
        usage_message(&["apikeys", "create", "--expires-in-days", "0"]),
        "invalid value '0' for --expires-in-days: expected a number of at least 1"
    );
}

#[test]
fn apikeys_list_project_id() {
    assert_eq!(list_args(NONE), (None, false));
    for args in spelled("--project-id", None, "p-1") {
        assert_eq!(list_args(&args), (Some("p-1".into()), false), "{args:?}");
    }
    let last = list_args(&["--project-id", "a", "--project-id", "b"]);
    assert_eq!(last.0.as_deref(), Some("b"), "last wins");
}

#[test]
fn apikeys_list_all() {
    for args in switched("--all", Some('a')) {
        assert_eq!(list_args(&args), (None, true), "{args:?}");
    }
}

// ---- sync ---------------------------------------------------------------

#[test]
fn sync_pull_scenario() {
    assert_eq!(pull_args(NONE).scenario, None);
    for args in spelled("--scenario", Some('s'), "support-bot") {
        let a = pull_args(&args);
        assert_eq!(a.scenario.as_deref(), Some("support-bot"), "{args:?}");
    }
    let a = pull_args(&["-s", "a", "--scenario", "b"]);
    assert_eq!(a.scenario.as_deref(), Some("b"), "last wins");
}

#[test]
fn sync_pull_bundle_version_id() {
    assert_eq!(pull_args(NONE).bundle_version_id, None);
    for args in spelled("--bundle-version-id", None, "bv-1") {
        let a = pull_args(&args);
        assert_eq!(a.bundle_version_id.as_deref(), Some("bv-1"), "{args:?}");
    }
    let a = pull_args(&["--bundle-version-id", "a", "--bundle-version-id=b"]);
    assert_eq!(a.bundle_version_id.as_deref(), Some("b"), "last wins");
}

#[test]
fn sync_pull_project_id() {
    assert_eq!(pull_args(NONE).project_id, None);
    for args in spelled("--project-id", None, "p-1") {
        let a = pull_args(&args);
        assert_eq!(a.project_id.as_deref(), Some("p-1"), "{args:?}");
    }
    let a = pull_args(&["--project-id", "a", "--project-id", "b"]);
    assert_eq!(a.project_id.as_deref(), Some("b"), "last wins");
}

#[test]
fn sync_pull_keep_local() {
    assert!(!pull_args(NONE).keep_local);
    for args in switched("--keep-local", None) {
        assert!(pull_args(&args).keep_local, "{args:?}");
    }
}

#[test]
fn sync_upload_scenario() {
    assert_eq!(upload_args(NONE).scenario, None);
    for args in spelled("--scenario", Some('s'), "support-bot") {
        let a = upload_args(&args);
        assert_eq!(a.scenario.as_deref(), Some("support-bot"), "{args:?}");
    }
    let a = upload_args(&["--scenario", "a", "-s", "b"]);
    assert_eq!(a.scenario.as_deref(), Some("b"), "last wins");
    // `sync push` is the same command.
    match run(&["sync", "push", "-s", "c"]).1 {
        Command::Sync(SyncCommand::Upload(a)) => assert_eq!(a.scenario.as_deref(), Some("c")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sync_upload_result_dir() {
    assert_eq!(upload_args(NONE).result_dir, None);
    for args in spelled("--result-dir", None, ".fluxloop/results/r1") {
        let a = upload_args(&args);
        assert_eq!(
            a.result_dir,
            Some(PathBuf::from(".fluxloop/results/r1")),
            "{args:?}"
        );
    }
    let a = upload_args(&["--result-dir", "a", "--result-dir", "b"]);
    assert_eq!(a.result_dir, Some(PathBuf::from("b")), "last wins");
}

#[test]
fn sync_upload_skip_invalid() {
    assert!(!upload_args(NONE).skip_invalid);
    for args in switched("--skip-invalid", None) {
        assert!(upload_args(&args).skip_invalid, "{args:?}");
    }
}

// ---- test ---------------------------------------------------------------

#[test]
fn test_scenario() {
    assert_eq!(test_args(NONE).scenario, None);
    for args in spelled("--scenario", Some('s'), "support-bot") {
        let a = test_args(&args);
        assert_eq!(a.scenario.as_deref(), Some("support-bot"), "{args:?}");
    }
    let a = test_args(&["-s", "a", "--scenario=b"]);
    assert_eq!(a.scenario.as_deref(), Some("b"), "last wins");
}

#[test]
fn test_iterations() {
    assert_eq!(test_args(NONE).iterations, None);
    for args in spelled("--iterations", Some('n'), "4") {
        assert_eq!(test_args(&args).iterations, Some(4), "{args:?}");
    }
    assert_eq!(
        test_args(&["-n", "2", "--iterations", "3"]).iterations,
        Some(3)
    );
    assert_eq!(
        usage_message(&["test", "-n", "0"]),
        "invalid value '0' for --iterations: expected a number of at least 1"
    );
}

#[test]
fn test_parallel() {
    assert_eq!(test_args(NONE).parallel, None);
    for args in spelled("--parallel", Some('j'), "8") {
        assert_eq!(test_args(&args).parallel, Some(8), "{args:?}");
    }
    assert_eq!(test_args(&["-j", "2", "--parallel=5"]).parallel, Some(5));
    assert_eq!(
        usage_message(&["test", "--parallel", "x"]),
        "invalid value 'x' for --parallel: expected a number of at least 1"
    );
}

#[test]
fn test_timeout() {
    assert_eq!(test_args(NONE).timeout, None);
    for args in spelled("--timeout", None, "2.5") {
        assert_eq!(test_args(&args).timeout, Some(2.5), "{args:?}");
    }
    assert_eq!(
        test_args(&["--timeout", "9", "--timeout", "30"]).timeout,
        Some(30.0)
    );
    assert_eq!(
        usage_message(&["test", "--timeout", "0"]),
        "--timeout must be a positive number of seconds"
    );
}

#[test]
fn test_skip_pull() {
    assert!(!test_args(NONE).skip_pull);
    for args in switched("--skip-pull", None) {
        assert!(test_args(&args).skip_pull, "{args:?}");
    }
}

#[test]
fn test_keep_local() {
    assert!(!test_args(NONE).keep_local);
    for args in switched("--keep-local", None) {
        assert!(test_args(&args).keep_local, "{args:?}");
    }
}

#[test]
fn test_skip_upload() {
    assert_eq!(test_args(NONE).upload, None);
    for args in switched("--skip-upload", None) {
        assert_eq!(test_args(&args).upload, Some(false), "{args:?}");
    }
    let a = test_args(&["--no-skip-upload", "--skip-upload"]);
    assert_eq!(a.upload, Some(false), "last wins");
}

#[test]
fn test_no_skip_upload() {
    // `--upload` is its old name.
    for flag in ["--no-skip-upload", "--upload"] {
        for args in switched(flag, None) {
            assert_eq!(test_args(&args).upload, Some(true), "{args:?}");
        }
    }
    let a = test_args(&["--skip-upload", "--no-skip-upload"]);
    assert_eq!(a.upload, Some(true), "last wins");
}

#[test]
fn test_junit() {
    assert_eq!(test_args(NONE).junit, None);
    for args in spelled("--junit", None, "out/junit.xml") {
        let a = test_args(&args);
        assert_eq!(a.junit, Some(PathBuf::from("out/junit.xml")), "{args:?}");
    }
    let a = test_args(&["--junit", "a.xml", "--junit", "b.xml"]);
    assert_eq!(a.junit, Some(PathBuf::from("b.xml")), "last wins");
}

#[test]
fn test_retries() {
    assert_eq!(test_args(NONE).select.retries, None);
    for args in spelled("--retries", None, "2") {
        assert_eq!(test_args(&args).select.retries, Some(2), "{args:?}");
    }
    let a = test_args(&["--retries", "1", "--retries", "0"]);
    assert_eq!(a.select.retries, Some(0), "last wins");
    assert_eq!(
        usage_message(&["test", "--retries", "x"]),
        "invalid value 'x' for --retries: must be a whole number"
    );
}

#[test]
fn test_fail_under() {
    assert_eq!(test_args(NONE).select.fail_under, None);
    for args in spelled("--fail-under", None, "0.95") {
        assert_eq!(test_args(&args).select.fail_under, Some(0.95), "{args:?}");
    }
    let a = test_args(&["--fail-under", "0.5", "--fail-under=1"]);
    assert_eq!(a.select.fail_under, Some(1.0), "last wins");
    assert_eq!(
        usage_message(&["test", "--fail-under", "high"]),
        "invalid value 'high' for --fail-under: must be a number from 0 to 1 (e.g. 0.95)"
    );
}

#[test]
fn test_max_failures() {
    assert_eq!(test_args(NONE).select.max_failures, None);
    for args in spelled("--max-failures", None, "5") {
        assert_eq!(test_args(&args).select.max_failures, Some(5), "{args:?}");
    }
    let a = test_args(&["--max-failures", "5", "--max-failures", "2"]);
    assert_eq!(a.select.max_failures, Some(2), "last wins");
}

#[test]
fn test_rate() {
    assert_eq!(test_args(NONE).select.rate, None);
    let per_second = Rate {
        text: "4/s".into(),
        interval: std::time::Duration::from_millis(250),
    };
    for args in spelled("--rate", None, "4/s") {
        assert_eq!(
            test_args(&args).select.rate,
            Some(per_second.clone()),
            "{args:?}"
        );
    }
    let a = test_args(&["--rate", "4/s", "--rate", "30/m"]);
    let per_minute = Rate {
        text: "30/m".into(),
        interval: std::time::Duration::from_secs(2),
    };
    assert_eq!(a.select.rate, Some(per_minute), "last wins");
}

#[test]
fn test_shard() {
    assert_eq!(test_args(NONE).select.shard, None);
    let two_of_three = ShardSpec::Fixed(Shard { index: 2, total: 3 });
    for args in spelled("--shard", None, "2/3") {
        assert_eq!(
            test_args(&args).select.shard,
            Some(two_of_three),
            "{args:?}"
        );
    }
    let a = test_args(&["--shard", "1/2", "--shard", "auto"]);
    assert_eq!(a.select.shard, Some(ShardSpec::Auto), "last wins");
}

#[test]
fn test_batch_key() {
    assert_eq!(test_args(NONE).select.batch_key, None);
    for args in spelled("--batch-key", None, "build-7") {
        let a = test_args(&args);
        assert_eq!(a.select.batch_key.as_deref(), Some("build-7"), "{args:?}");
    }
    let a = test_args(&["--batch-key", "a", "--batch-key", "b"]);
    assert_eq!(a.select.batch_key.as_deref(), Some("b"), "last wins");
}

#[test]
fn test_input() {
    assert!(test_args(NONE).select.inputs.is_empty());
    for args in spelled("--input", None, "in-1") {
        assert_eq!(test_args(&args).select.inputs, ["in-1"], "{args:?}");
    }
    let a = test_args(&["--input", "a", "--input=b"]);
    assert_eq!(a.select.inputs, ["a", "b"], "repeatable: every one counts");
}

#[test]
fn test_persona() {
    assert_eq!(test_args(NONE).select.persona, None);
    for args in spelled("--persona", None, "Busy professional") {
        let a = test_args(&args);
        assert_eq!(
            a.select.persona.as_deref(),
            Some("Busy professional"),
            "{args:?}"
        );
    }
    let a = test_args(&["--persona", "a", "--persona", "b"]);
    assert_eq!(a.select.persona.as_deref(), Some("b"), "last wins");
}

#[test]
fn test_grep() {
    assert_eq!(test_args(NONE).select.grep, None);
    for args in spelled("--grep", None, "refund") {
        assert_eq!(
            test_args(&args).select.grep.as_deref(),
            Some("refund"),
            "{args:?}"
        );
    }
    let a = test_args(&["--grep", "a", "--grep", "b"]);
    assert_eq!(a.select.grep.as_deref(), Some("b"), "last wins");
}

#[test]
fn test_last_failed() {
    assert!(!test_args(NONE).select.last_failed);
    for args in switched("--last-failed", None) {
        assert!(test_args(&args).select.last_failed, "{args:?}");
    }
}

#[test]
fn test_list() {
    assert!(!test_args(NONE).select.list);
    for args in switched("--list", None) {
        assert!(test_args(&args).select.list, "{args:?}");
    }
}

#[test]
fn test_dry_run() {
    assert!(!test_args(NONE).select.dry_run);
    for args in switched("--dry-run", None) {
        assert!(test_args(&args).select.dry_run, "{args:?}");
    }
}

// ---- report -------------------------------------------------------------

#[test]
fn report_scenario() {
    assert_eq!(report_args(NONE).scenario, None);
    for args in spelled("--scenario", Some('s'), "support-bot") {
        let a = report_args(&args);
        assert_eq!(a.scenario.as_deref(), Some("support-bot"), "{args:?}");
    }
    let a = report_args(&["-s", "a", "--scenario", "b"]);
    assert_eq!(a.scenario.as_deref(), Some("b"), "last wins");
}

#[test]
fn report_batch_key() {
    assert_eq!(report_args(NONE).batch_key, None);
    for args in spelled("--batch-key", None, "build-7") {
        let a = report_args(&args);
        assert_eq!(a.batch_key.as_deref(), Some("build-7"), "{args:?}");
    }
    let a = report_args(&["--batch-key", "a", "--batch-key", "b"]);
    assert_eq!(a.batch_key.as_deref(), Some("b"), "last wins");
}

#[test]
fn report_run_batch() {
    assert_eq!(report_args(NONE).run_batch, None);
    for args in spelled("--run-batch", None, "rb-1") {
        let a = report_args(&args);
        assert_eq!(a.run_batch.as_deref(), Some("rb-1"), "{args:?}");
    }
    let a = report_args(&["--run-batch", "a", "--run-batch=b"]);
    assert_eq!(a.run_batch.as_deref(), Some("b"), "last wins");
}

#[test]
fn report_wait() {
    assert_eq!(report_args(NONE).wait, None);
    for args in spelled("--wait", None, "30") {
        assert_eq!(report_args(&args).wait, Some(30.0), "{args:?}");
    }
    let default = Some(super::report::DEFAULT_WAIT_SECS);
    assert_eq!(report_args(&["--wait"]).wait, default, "no value");
    let a = report_args(&["--wait", "--junit", "j.xml"]);
    assert_eq!(a.wait, default, "a flag after it is not its value");
    assert_eq!(
        report_args(&["--wait", "5", "--wait=7"]).wait,
        Some(7.0),
        "last wins"
    );
}

#[test]
fn report_junit() {
    assert_eq!(report_args(NONE).junit, None);
    for args in spelled("--junit", None, "merged.xml") {
        let a = report_args(&args);
        assert_eq!(a.junit, Some(PathBuf::from("merged.xml")), "{args:?}");
    }
    let a = report_args(&["--junit", "a.xml", "--junit", "b.xml"]);
    assert_eq!(a.junit, Some(PathBuf::from("b.xml")), "last wins");
}

#[test]
fn report_merge() {
    assert!(report_args(NONE).merge.is_empty());
    for args in spelled("--merge", None, "shard-1") {
        assert_eq!(
            report_args(&args).merge,
            [PathBuf::from("shard-1")],
            "{args:?}"
        );
    }
    let a = report_args(&["--merge", "a", "b", "--merge=c"]);
    let want = ["a", "b", "c"].map(PathBuf::from);
    assert_eq!(a.merge, want, "every directory after it, and repeatable");
}

// ---- init ---------------------------------------------------------------

#[test]
fn init_scenario() {
    assert_eq!(init_args(NONE), InitArgs::default());
    for args in spelled("--scenario", Some('s'), "support-bot") {
        let a = init_args(&args);
        assert_eq!(a.scenario.as_deref(), Some("support-bot"), "{args:?}");
    }
    let a = init_args(&["-s", "a", "--scenario", "b"]);
    assert_eq!(a.scenario.as_deref(), Some("b"), "last wins");
}

#[test]
fn init_force() {
    assert!(!init_args(NONE).force);
    for args in switched("--force", Some('f')) {
        assert!(init_args(&args).force, "{args:?}");
    }
}

// ---- the table ----------------------------------------------------------

/// The body of `fn name()` in this file, if there is such a test.
fn test_body<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let start = source.find(&format!("#[test]\nfn {name}() {{\n"))?;
    let body = &source[start..];
    let end = body.find("\n}\n")?;
    Some(&body[..end])
}

/// The test of `--long` on `path` is `<path>_<long>` (`global_<long>` for a
/// global flag), and it spells the flag, and its short form, out.
#[test]
fn every_flag_of_the_table_has_its_test() {
    let source = include_str!("flag_tests.rs");
    let leaves = COMMANDS.iter().filter(|c| {
        !COMMANDS
            .iter()
            .any(|d| d.path.len() > c.path.len() && d.path.starts_with(c.path))
    });
    let mut wanted: Vec<(String, super::table::OptSpec)> = global_options()
        .into_iter()
        .map(|o| (format!("global_{}", o.long), o))
        .collect();
    for c in leaves {
        for o in options(c.help) {
            wanted.push((format!("{}_{}", c.path.join("_"), o.long), o));
        }
    }
    assert!(wanted.len() > 50, "the table lists {} flags", wanted.len());
    let mut missing = Vec::new();
    for (name, o) in &wanted {
        let name = name.replace('-', "_");
        let Some(body) = test_body(source, &name) else {
            missing.push(format!("no test {name} for --{}", o.long));
            continue;
        };
        if !body.contains(&format!("\"--{}\"", o.long)) {
            missing.push(format!("{name} does not use --{}", o.long));
        }
        if let Some(s) = o.short {
            if !body.contains(&format!("Some('{s}')")) {
                missing.push(format!("{name} does not use -{s}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
